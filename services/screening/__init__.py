"""screening: verification cases, the identification ladder (识别纳入), subjects and removal."""

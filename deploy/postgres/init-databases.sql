-- One database per service; no service reads another's.
CREATE DATABASE fangpin_intake OWNER fangpin;
CREATE DATABASE fangpin_screening OWNER fangpin;
CREATE DATABASE fangpin_assistance OWNER fangpin;
CREATE DATABASE fangpin_exit_review OWNER fangpin;
CREATE DATABASE fangpin_notifier OWNER fangpin;

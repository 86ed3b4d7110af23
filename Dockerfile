# One image for all five services; the container's command names the service.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY runtime ./runtime
COPY services ./services
COPY audit ./audit
RUN pip install --no-cache-dir . && useradd --system --uid 10001 fangpin
USER fangpin
ENV FANGPIN_HTTP_HOST=0.0.0.0
ENTRYPOINT ["python", "-m", "runtime.serve"]
CMD ["intake"]

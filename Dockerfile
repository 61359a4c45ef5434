# The asyncbench image: the harness, the FastAPI service and Locust, on Python 3.11.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bench ./bench
COPY scenarios ./scenarios
RUN pip install --no-cache-dir . && useradd --create-home bench && mkdir -p results reports \
    && chown bench results reports
USER bench
EXPOSE 8000 8089
CMD ["bench", "--help"]

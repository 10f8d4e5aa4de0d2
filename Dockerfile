# The application image: every `continuum` command (relay, consume, serve, project, ...).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain domain
COPY projections projections
COPY services services
COPY infra infra
RUN pip install --no-cache-dir . && useradd --create-home --uid 10001 continuum
USER continuum
CMD ["continuum", "--help"]

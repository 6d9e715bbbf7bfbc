# The stand-in X-Ray daemon of compose.tracing.yaml: scripts/xray_collector.py on Debian's Python.
# Build from the repository root:
#   docker build -f scripts/xray-collector.Dockerfile -t ecs-service-connect-demo/xray-collector .
# Where containers cannot reach the apt mirror through the default bridge, add `--network host`.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin app
COPY scripts/xray_collector.py /usr/local/bin/xray_collector.py
USER 10001:10001
EXPOSE 2000/udp
STOPSIGNAL SIGTERM
# Unbuffered, so that `docker compose logs -f xray-collector` shows each trace as it completes.
ENV PYTHONUNBUFFERED=1
# The health checks' traces (every 3 s from each daemon) are kept in the file but not printed.
ENTRYPOINT ["/usr/bin/python3", "/usr/local/bin/xray_collector.py", "--listen", "0.0.0.0:2000", \
            "--out", "/tmp/segments.jsonl", "--hide", "/health"]

FROM python:3.11-slim

RUN useradd --create-home --uid 1000 bridge
WORKDIR /opt/bridge
COPY pyproject.toml README.md alembic.ini ./
COPY bridge ./bridge
RUN pip install --no-cache-dir .

# Runs as a non-root user, so the embedded PostgreSQL runs as that user too.
USER bridge
VOLUME /data
WORKDIR /data
EXPOSE 29400
ENV BRIDGE_APPSERVICE__HOSTNAME=0.0.0.0
CMD ["bridge", "run", "-c", "/data/config.yaml"]

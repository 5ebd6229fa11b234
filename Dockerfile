# Image for the data-import workers, migrations, CLI and HTTP API (see docker-compose.yml).
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, in their own layer: rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
RUN pip install --no-cache-dir . \
    && rm -rf build ./*.egg-info

# Unprivileged user. /data/uploads belongs to it in the image, so an empty named volume
# mounted there starts out writable by the worker.
RUN groupadd --system --gid 10001 dataimport \
    && useradd --system --uid 10001 --gid dataimport --create-home \
        --home-dir /home/dataimport --shell /usr/sbin/nologin dataimport \
    && mkdir -p /data/uploads \
    && chown dataimport:dataimport /data/uploads

ENV DATAIMPORT_HOME=/home/dataimport/.dataimport \
    DATAIMPORT_STORAGE_DIR=/data/uploads

USER 10001:10001

# The HTTP API (`dataimport api --host 0.0.0.0 --port 8000`); workers listen on nothing.
EXPOSE 8000

CMD ["python", "worker.py"]

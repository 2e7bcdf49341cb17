# xmppchat container image (README "Running in production").
#   docker build -t xmppchat .
#   docker run -d --name xmppchat -p 5222:5222 -p 5223:5223 -p 5291:5291 \
#       -p 127.0.0.1:5290:5290 -v xmppchat-data:/var/lib/xmppchat xmppchat
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --user-group --uid 10001 --home-dir /var/lib/xmppchat \
        --shell /usr/sbin/nologin xmppchat \
    && install -d -o xmppchat -g xmppchat -m 0750 /var/lib/xmppchat

WORKDIR /opt/xmppchat
COPY constraints.txt setup.cfg pyproject.toml README.md ./
COPY xmppchat ./xmppchat
COPY twisted ./twisted
# the tested versions of the TLS stack (constraints.txt); then build twistd's
# plugin cache while the site-packages are still writable
RUN pip install --constraint constraints.txt . \
    && twistd --help > /dev/null
COPY conf/xmppchat.container.toml /etc/xmppchat/xmppchat.toml

USER xmppchat
WORKDIR /var/lib/xmppchat
VOLUME /var/lib/xmppchat
# c2s STARTTLS, c2s direct TLS, WebSocket, ops (metrics, health, admin API)
EXPOSE 5222 5223 5291 5290

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "xmppchat.ops.probe", "--config", "/etc/xmppchat/xmppchat.toml"]

# foreground, logs on stdout, no pidfile (PID 1 is the same number at every start)
CMD ["twistd", "--nodaemon", "--pidfile=", "xmppchat", "--config", "/etc/xmppchat/xmppchat.toml"]

# Switchyard in a container: built in one stage, run from a small one as a
# user of its own. Mount the config at /etc/switchyard/proxy.toml and keep
# /var/lib/switchyard (the state file) on a volume. In that config set
#   state_file = "/var/lib/switchyard/switchyard.state.json"
#   admin_socket = "/run/switchyard/switchyard.sock"
# (admin commands in the container find that socket through
# SWITCHYARD_SOCKET: `docker exec NAME switchyard status`).
#
#   docker build -t switchyard .
#   docker run -v $PWD/proxy.toml:/etc/switchyard/proxy.toml:ro \
#     -v switchyard-state:/var/lib/switchyard -p 9092:9092 -p 9100-9199:9100-9199 switchyard

FROM rust:1-bookworm AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends cmake libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
RUN cargo build --release --locked --bin switchyard \
    && install -D -m 0755 target/release/switchyard /out/switchyard

FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/switchyard --shell /usr/sbin/nologin switchyard \
    && install -d -o switchyard -g switchyard -m 0750 /var/lib/switchyard /run/switchyard \
    && install -d -m 0755 /etc/switchyard
COPY --from=build /out/switchyard /usr/local/bin/switchyard
USER switchyard
WORKDIR /var/lib/switchyard
VOLUME ["/var/lib/switchyard"]
ENV SWITCHYARD_SOCKET=/run/switchyard/switchyard.sock
EXPOSE 9092 9644
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/switchyard"]
CMD ["run", "-c", "/etc/switchyard/proxy.toml"]

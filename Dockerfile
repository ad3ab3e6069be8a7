# One image for every role (`bowchat serve --roles ...`) and for the operator
# (`bowchat-operator run`). Build from the repository root:
#   docker build -t bowchat:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
# librdkafka is built from source by rdkafka's build script (the base image has its C toolchain).
COPY . .
RUN cargo build --release --locked -p bowchat -p bowchat-operator \
 && cp target/release/bowchat target/release/bowchat-operator /usr/local/bin/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home bowchat
COPY --from=build /usr/local/bin/bowchat /usr/local/bin/bowchat-operator /usr/local/bin/
USER 10001
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/bowchat"]
CMD ["serve"]

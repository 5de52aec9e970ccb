# trueline with a pinned OpenTofu, running `trueline serve`.
#
#   docker build -t trueline .
#   docker run -v trueline-data:/var/lib/trueline -v $PWD/trueline.hcl:/etc/trueline/trueline.hcl:ro \
#     -e GITHUB_TOKEN -e AWS_PROFILE -p 8080:8080 trueline
#
# Providers are downloaded by `tofu init` at run time from the registries the
# image can reach (or a mirror named in a CLI config mounted at
# /etc/trueline/terraformrc and TF_CLI_CONFIG_FILE).

ARG GO_VERSION=1.26
ARG TOFU_VERSION=1.10.10

FROM golang:${GO_VERSION}-bookworm AS build
ARG TOFU_VERSION
WORKDIR /src
# OpenTofu's go.mod has a replace directive, so `go install` refuses it:
# build it inside the downloaded module.
RUN dir=$(go mod download -json github.com/opentofu/opentofu@v${TOFU_VERSION} | sed -n 's/.*"Dir": "\(.*\)",/\1/p') \
 && cp -r "$dir" /tofu && chmod -R u+w /tofu \
 && cd /tofu && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" -o /out/tofu ./cmd/tofu
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/trueline ./cmd/trueline

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/trueline --create-home trueline
COPY --from=build /out/tofu /out/trueline /usr/local/bin/
USER trueline
ENV TRUELINE_DATA_DIR=/var/lib/trueline \
    TRUELINE_BINARY=tofu \
    TRUELINE_LISTEN=0.0.0.0:8080 \
    TRUELINE_LOG_FORMAT=json \
    TRUELINE_LOG_LEVEL=info
VOLUME /var/lib/trueline
EXPOSE 8080
ENTRYPOINT ["trueline", "serve"]
CMD ["--config", "/etc/trueline/trueline.hcl"]

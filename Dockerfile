# One image per program: docker build --build-arg PROGRAM=manager (the
# operator) or PROGRAM=verifier (the sidecar). Static, non-root, nothing but
# the binary.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
ARG PROGRAM=manager
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/program ./cmd/${PROGRAM}

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/program /program
USER 65532:65532
ENTRYPOINT ["/program"]

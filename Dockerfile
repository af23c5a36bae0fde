# The xmppgw image: the static binary of `make build` on an empty base, so
# that building needs no registry. Build it with `make docker`, which lays
# out the build context in bin/docker/ (the binary, this machine's CA
# certificates, passwd and group files naming the user xmppgw, uid 10001,
# the example config and an empty data directory) and runs
#   docker build -f Dockerfile -t xmppgw:VERSION bin/docker
# Run: see "Docker" in README.md (config mounted at /etc/xmppgw/xmppgw.yaml,
# secrets in the environment, the presence store in the volume).
FROM scratch
COPY passwd group /etc/
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY xmppgw /usr/bin/xmppgw
COPY xmppgw.yaml /etc/xmppgw/xmppgw.yaml
COPY --chown=10001:10001 data /var/lib/xmppgw
USER 10001:10001
WORKDIR /var/lib/xmppgw
VOLUME ["/var/lib/xmppgw"]
# /metrics, /healthz, /readyz when http.listen is set to reach them from
# outside the container (XMPPGW_HTTP_LISTEN=0.0.0.0:9465).
EXPOSE 9465
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/xmppgw"]
CMD ["run", "-c", "/etc/xmppgw/xmppgw.yaml"]

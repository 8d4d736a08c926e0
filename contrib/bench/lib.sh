# Shared by the bench scripts (sourced, not run).

# bench_config FILE PORT KEY_DIR: one UDP worker on 127.0.0.1:PORT serving the signed bench zone
# ($DATA/be-$N.zone) with the keys in KEY_DIR, loopback exempt from RRL (dnsperf sends from one
# address, so RRL would otherwise measure the limiter).
bench_config() {
  cat > "$1" <<CONF
[server]
listen = ["127.0.0.1:$2"]
workers = 1
[rrl]
exempt = ["127.0.0.0/8"]
[zone]
origin = "be."
file = "$DATA/be-$N.zone"
[dnssec]
enabled = true
key_dir = "$3"
CONF
}

#!/usr/bin/env bash
# A dvrclip cluster on this machine (design/cluster.md): etcd, three `dvrclip serve`
# nodes joined to it, nginx as a round-robin balancer in front of their HTTP. Prints
# the balancer's URL, the API key, and a command that pushes a live ladder through
# the balancer; Ctrl-C stops everything and removes the temp directory.
#
#   scripts/cluster-demo.sh                  # debug build, ports 8080 (nginx), 8081-8083
#   BASE_PORT=9080 scripts/cluster-demo.sh   # nginx on 9080, nodes on 9081-9083
#   PROFILE=release scripts/cluster-demo.sh
#
# Try: create a stream through the balancer, push to its push_url_http, cut a clip,
# then `kill -9` the owning node (its pid is printed): after the lease TTL (LEASE_TTL,
# default 5 s) the next upload through the balancer makes another node the owner.
# Needs etcd (Debian's etcd-server) and nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${BASE_PORT:-8080}
ttl=${LEASE_TTL:-5}
key=${API_KEY:-demo}
profile=${PROFILE:-debug}
if [ "$profile" = release ]; then cargo build --release --bin dvrclip >&2; else cargo build --bin dvrclip >&2; fi
bin=${CARGO_TARGET_DIR:-target}/$profile/dvrclip
nginx=/usr/sbin/nginx
command -v etcd >/dev/null || { echo "etcd not found (apt-get install etcd-server)" >&2; exit 1; }
[ -x "$nginx" ] || { echo "$nginx not found (apt-get install nginx)" >&2; exit 1; }
dir=$(mktemp -d -t dvrclip-cluster.XXXXXX)
pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
  echo "stopped" >&2
}
trap cleanup EXIT INT TERM

etcd_url=http://127.0.0.1:$((base + 2300))
peer_url=http://127.0.0.1:$((base + 2301))
etcd --data-dir "$dir/etcd" --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
  --listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
  --initial-cluster "default=$peer_url" >"$dir/etcd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf -X POST -d '{}' "$etcd_url/v3/maintenance/status" >/dev/null && break; sleep 0.1; done

upstreams=""
for i in 1 2 3; do
  port=$((base + i))
  "$bin" serve --listen "127.0.0.1:$port" --api-key "$key" --public-url "http://127.0.0.1:$base" \
    --data-dir "$dir/n$i" --spool-dir off \
    --cluster-etcd "$etcd_url" --node-id "n$i" --lease-ttl "$ttl" >"$dir/n$i.out" 2>"$dir/n$i.log" &
  pids+=($!)
  echo "node n$i: http://127.0.0.1:$port (pid $!, log $dir/n$i.log)"
  upstreams+="    server 127.0.0.1:$port max_fails=1 fail_timeout=10s;"$'\n'
done

mkdir -p "$dir/nginx"
cat >"$dir/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/nginx/body;
  proxy_temp_path $dir/nginx/proxy;
  fastcgi_temp_path $dir/nginx/fcgi;
  uwsgi_temp_path $dir/nginx/uwsgi;
  scgi_temp_path $dir/nginx/scgi;
  upstream nodes {
$upstreams  }
  server {
    listen 127.0.0.1:$base;
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    proxy_http_version 1.1;
    proxy_set_header Host \$http_host;
    proxy_set_header Connection "";
    proxy_connect_timeout 1s;
    proxy_next_upstream error timeout non_idempotent;
    location / { proxy_pass http://nodes; }
  }
}
EOF
if [ "$(id -u)" -eq 0 ]; then
  # nginx runs as nobody: it must reach its prefix (mktemp makes the dir 0700).
  chmod a+rx "$dir"
  chmod -R a+rwx "$dir/nginx"
  setpriv --reuid=65534 --regid=65534 --clear-groups "$nginx" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" &
else
  "$nginx" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" &
fi
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$base/healthz" >/dev/null && break; sleep 0.1; done

cat <<EOF

etcd:      $etcd_url
balancer:  http://127.0.0.1:$base   (nginx, round robin over the three nodes)
API key:   $key
console:   http://127.0.0.1:$base/console

create a stream:  curl -s -X POST -H 'Authorization: APIKey $key' http://127.0.0.1:$base/streaming/streams -d '{"name":"cam"}'
push to it:       URL=<its push_url_http>; ffmpeg -re -f lavfi -i testsrc2=size=640x360:rate=30 \\
                    -f lavfi -i sine -t 120 -c:v libx264 -preset veryfast -g 60 -c:a aac \\
                    -f hls -hls_time 2 -hls_segment_type fmp4 -method PUT -http_persistent 1 \\
                    -hls_fmp4_init_filename init.mp4 -hls_segment_filename "\$URL/v/seg_%05d.m4s" "\$URL/v/index.m3u8"
who owns what:    ETCDCTL_API=3 etcdctl --endpoints $etcd_url get --prefix /dvrclip/owners/

Ctrl-C stops everything.
EOF
wait

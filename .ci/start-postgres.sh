#!/usr/bin/env bash
# Start a local PostgreSQL for the tests marked `postgres` (installing it from Debian's packages when it is
# missing) and print the URL they read from NETCARVE_TEST_POSTGRES_URL. Loopback only.
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version main"; then
  pg_createcluster "$version" main >/dev/null
fi
pg_ctlcluster "$version" main start >/dev/null 2>&1 || true
for _ in $(seq 1 30); do
  runuser -u postgres -- pg_isready -q -h 127.0.0.1 && break
  sleep 1
done
runuser -u postgres -- psql -q -h 127.0.0.1 -c "ALTER USER postgres PASSWORD 'netcarve'" >/dev/null 2>&1 \
  || runuser -u postgres -- psql -q -c "ALTER USER postgres PASSWORD 'netcarve'" >/dev/null
runuser -u postgres -- psql -q -tc "SELECT 1 FROM pg_database WHERE datname = 'netcarve_test'" | grep -q 1 \
  || runuser -u postgres -- createdb netcarve_test
port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
echo "postgresql://postgres:netcarve@127.0.0.1:${port}/netcarve_test"

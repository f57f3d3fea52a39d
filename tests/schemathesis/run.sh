#!/usr/bin/env bash
# API conformance: schemathesis against a live gateway over mTLS, one run
# per listener (intake, callbacks, admin), each from the description the
# listener itself serves at /openapi.json, presenting a principal of that
# listener. Part of `make test` (docs/operator-guide.md, "API description").
#
#   tests/schemathesis/run.sh            the CI run (small, seeded)
#   MAX_EXAMPLES=200 tests/schemathesis/run.sh   a longer one
set -euo pipefail
cd "$(dirname "$0")/../.."

target=${CARGO_TARGET_DIR:-target}
venv=$(realpath -m "${SCHEMATHESIS_VENV:-$target/schemathesis-venv}")
max_examples=${MAX_EXAMPLES:-12}
seed=${SCHEMATHESIS_SEED:-20261207}

if [ ! -x "$venv/bin/schemathesis" ] ||
   ! cmp -s tests/schemathesis/requirements.txt "$venv/requirements.txt"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/schemathesis/requirements.txt
  cp tests/schemathesis/requirements.txt "$venv/requirements.txt"
fi

${CARGO:-cargo} build --quiet -p yiwang-e2e --bin yiwang-api-world
work=$(mktemp -d)
"$target/debug/yiwang-api-world" "$work/env" > "$work/world.log" 2>&1 &
world=$!
stop() {
  kill -INT "$world" 2>/dev/null || true
  wait "$world" 2>/dev/null || true
  rm -rf "$work"
}
trap stop EXIT
for _ in $(seq 1 600); do
  [ -f "$work/env" ] && break
  kill -0 "$world" 2>/dev/null || { cat "$work/world.log"; exit 1; }
  sleep 0.2
done
[ -f "$work/env" ] || { echo "the gateway did not come up"; cat "$work/world.log"; exit 1; }
# shellcheck disable=SC1091
. "$work/env"

# schemathesis keeps a cache in its working directory: the scratch one.
cd "$work"
failed=0
for listener in INTAKE CALLBACKS ADMIN; do
  url=${listener}_URL cert=${listener}_CERT key=${listener}_KEY
  echo "== schemathesis: ${listener,,} listener (${!url})"
  "$venv/bin/schemathesis" run "${!url}/openapi.json" \
    --url "${!url}" \
    --tls-verify "$CA" --request-cert "${!cert}" --request-cert-key "${!key}" \
    --checks all \
    --exclude-checks positive_data_acceptance \
    --phases examples,coverage,fuzzing \
    --max-examples "$max_examples" --seed "$seed" \
    --suppress-health-check filter_too_much,too_slow \
    --workers 1 --no-shrink \
    --warnings off \
    || failed=1
done
exit "$failed"

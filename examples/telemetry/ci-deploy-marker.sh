#!/bin/sh
# A CI/CD step after a rollout: record the deploy so investigations see it as a change.
# Needs CASEBOOK_URL, CASEBOOK_TOKEN, SERVICE and VERSION (the image tag or commit).
set -eu
summary="${SERVICE} ${VERSION} rolled out"

if command -v casebook >/dev/null 2>&1; then
  casebook event deploy "${SERVICE}" --summary "${summary}" --version "${VERSION}" \
    --attr pipeline=ci --url "${CASEBOOK_URL}"          # reads CASEBOOK_TOKEN
else
  curl --fail --silent --show-error \
    -H "Authorization: Bearer ${CASEBOOK_TOKEN}" -H "Content-Type: application/json" \
    -d "{\"kind\": \"deploy\", \"service\": \"${SERVICE}\", \"summary\": \"${summary}\",
         \"attributes\": {\"version\": \"${VERSION}\", \"pipeline\": \"ci\"}}" \
    "${CASEBOOK_URL}/api/events"
fi

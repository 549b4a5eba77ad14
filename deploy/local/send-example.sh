#!/usr/bin/env bash
# Sends one example event to the local sluice-ingress the way Stripe would: a charge.succeeded
# webhook, signed with $STRIPE_WEBHOOK_SECRET (Stripe-Signature: t=<unix>,v1=<HMAC-SHA256 of
# "<t>.<body>">), POSTed to /v1/events/stripe. Prints the HTTP status and the reply: 202 with the
# event id once Kafka has the event, or the error as JSON. The event satisfies the example's
# schema (schemas/sources/stripe/charge.succeeded.json), so it passes sluice-validate too.
#
#   . .run/dev.env && deploy/local/send-example.sh [CUSTOMER_ID]
#
# Environment: STRIPE_WEBHOOK_SECRET (from .run/dev.env, which deploy/local/up.sh writes; read
# from there when unset), SLUICE_INGRESS_URL (default http://127.0.0.1:8080).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ $# -le 1 ] || die "usage: $(basename "$0") [CUSTOMER_ID]"
need_cmd curl openssl

if [ -z "${STRIPE_WEBHOOK_SECRET:-}" ] && [ -f "$SLUICE_RUN_ROOT/dev.env" ]; then
    # shellcheck disable=SC1091
    . "$SLUICE_RUN_ROOT/dev.env"
fi
[ -n "${STRIPE_WEBHOOK_SECRET:-}" ] ||
    die "STRIPE_WEBHOOK_SECRET is not set (run deploy/local/up.sh, then: . .run/dev.env)"
url="${SLUICE_INGRESS_URL:-http://127.0.0.1:8080}/v1/events/stripe"
customer="${1:-cus_Example42}"
[[ "$customer" =~ ^cus_[A-Za-z0-9]+$ ]] || die "customer ids look like cus_ followed by letters and digits"

now=$(date +%s)
event_id="evt_$(openssl rand -hex 12)"
charge_id="ch_$(openssl rand -hex 12)"
body=$(printf '{"id":"%s","object":"event","type":"charge.succeeded","created":%s,"data":{"object":{"id":"%s","object":"charge","amount":4200,"amount_refunded":0,"currency":"eur","customer":"%s","paid":true,"status":"succeeded"}}}' \
    "$event_id" "$now" "$charge_id" "$customer")
# The signed bytes are exactly the body that is sent.
signature=$(printf '%s.%s' "$now" "$body" | openssl dgst -sha256 -hmac "$STRIPE_WEBHOOK_SECRET" |
    awk '{print $NF}')

say "POST $url (event $event_id, customer $customer)"
curl -sS --max-time 30 -w '\nHTTP %{http_code}\n' -X POST "$url" \
    -H 'Content-Type: application/json' \
    -H "Stripe-Signature: t=$now,v1=$signature" \
    --data-binary "$body"

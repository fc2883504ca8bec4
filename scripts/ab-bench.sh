#!/usr/bin/env bash
# ab-bench.sh: compare two builds of the load tool (cmd/mandate-bench, each
# with the server of its own tree built in) in interleaved runs, so that
# whatever else the machine does weighs on both alike. For each round and
# each concurrency it runs A then B (B then A in even rounds, so that a drift
# over the session does not favour one), each a
# `BIN --json --rounds 1 --concurrency C FLAGS…` that benchmarks a server
# started from BIN itself. A mandate binary from before the load tool had a
# command of its own is run as `BIN bench …`. The JSON of every run is kept in DIR, and
# a summary is printed: every run, then per concurrency the ratio B ÷ A of
# each figure within each round, the median of those ratios, and the median
# over the quiet rounds only (both runs with others < 0.25 cores).
#
#   scripts/ab-bench.sh [-n ROUNDS] [-c CONCURRENCIES] [-o DIR] A_BIN B_BIN [bench flags…]
#   scripts/ab-bench.sh -n 8 -c 1,8,16 /tmp/bench-a /tmp/bench-b \
#     --grant exchange --duration 8s --warmup 2s [--store "$MANDATE_TEST_POSTGRES_URL"]
#   scripts/ab-bench.sh -s DIR   # print the summary of a finished run again
#
# Figures: req/s; srv µs/req, the server's CPU per request; db+other µs/req,
# the machine's busy CPU time less the server's and the load generator's,
# per request (with a postgres:// --store on an otherwise idle machine,
# mostly the database's own work); p50 and p99 latency; others, that same
# CPU in cores; KB/req, the bytes the server wrote to disk per request
# (write_bytes of /proc/PID/io, in KiB; "-" from a build that does not
# report it). Defaults: 3 rounds, concurrency 1,16. Needs jq.
#
# To compare two configurations of one build, give the same binary twice and
# the flags of each side with -A and -B (split on spaces), e.g. a server that
# archives and sweeps while it is measured against one that does not:
#   scripts/ab-bench.sh -n 3 -c 32 -L /tmp/bench.lock \
#     -A '--sweep-every 1h' -B '--retention 720h --sweep-every 1s' \
#     /tmp/bench /tmp/bench --copy-db /tmp/fill.db --grant exchange --duration 30s
# -L LOCKFILE holds flock(1) on LOCKFILE for each A/B pair only, so that
# others sharing the machine can measure between the pairs.
set -euo pipefail

usage() { sed -n '2,34p' "$0" >&2; exit 2; }
rounds=3 concs=1,16 dir="" summary_only="" a_flags="" b_flags="" lock=""
while getopts "n:c:o:s:A:B:L:" opt; do
  case $opt in
    A) a_flags=$OPTARG ;;
    B) b_flags=$OPTARG ;;
    L) lock=$OPTARG ;;
    n) rounds=$OPTARG ;;
    c) concs=$OPTARG ;;
    o) dir=$OPTARG ;;
    s) summary_only=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))

summary() {
  local d=$1 prog='
    def med: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
      else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    def f(n): if n == null then "-" else (n * 100 | round) / 100 end;
    def meds($r; $name): "\($name) \(f([$r[].rps] | med)) \(f([$r[].cpu] | med)) \(f([$r[].other | select(.)] | med)) \(f([$r[].p50] | med)) \(f([$r[].p99] | med)) \(f([$r[].kb | select(.)] | med))";
    [ .[] as $f | $f.runs[] | {
        round: $f.ab_round, bin: $f.ab_bin, grant, conc: .concurrency,
        rps: .throughput_rps, errors,
        cpu: (.server.cpu_per_request_ns / 1000),
        other: ((.machine.others_cores // 0) * .elapsed_ns / .requests / 1000),
        others: (.machine.others_cores // 0),
        p50: (.latency.p50_ns / 1e6), p99: (.latency.p99_ns / 1e6),
        kb: (if .server.io then .server.io.write_bytes_per_request / 1024 else null end) } ] as $runs
    | if $what == "runs" then
        "round bin grant conc req/s srv_us/req db+other_us/req p50_ms p99_ms others errors KB/req",
        ($runs | sort_by(.grant, .conc, .round, .bin)[] |
          "\(.round) \(.bin) \(.grant) \(.conc) \(.rps | round) \(.cpu | round) \(.other | round) \(f(.p50)) \(f(.p99)) \(f(.others)) \(.errors) \(f(.kb))")
      else
        "grant conc round req/s srv_us/req db+other_us/req p50 p99 KB/req",
        ($runs | group_by(.grant, .conc)[] | . as $g
          | [ $g | group_by(.round)[] | select(length == 2)
              | (map(select(.bin == "A"))[0]) as $a | (map(select(.bin == "B"))[0]) as $b
              | { round: $a.round, rps: ($b.rps / $a.rps), cpu: ($b.cpu / $a.cpu),
                  other: (if $a.other > 0 then $b.other / $a.other else null end),
                  p50: ($b.p50 / $a.p50), p99: ($b.p99 / $a.p99),
                  kb: (if $a.kb and $b.kb and $a.kb > 0 then $b.kb / $a.kb else null end),
                  quiet: ([$a.others, $b.others] | max < 0.25) } ] as $r
          | ($r[] | "\($g[0].grant) \($g[0].conc) \(.round)\(if .quiet then "q" else "" end) \(f(.rps)) \(f(.cpu)) \(f(.other)) \(f(.p50)) \(f(.p99)) \(f(.kb))"),
            meds($r; "\($g[0].grant) \($g[0].conc) median"),
            ([$r[] | select(.quiet)] as $q | if ($q | length) > 0 then meds($q; "\($g[0].grant) \($g[0].conc) median-quiet(\($q | length))") else empty end))
      end'
  echo "runs"
  jq -s -r --arg what runs "$prog" "$d"/r*[AB].json | column -t
  echo
  echo "B ÷ A within each round (q: a quiet round), the median of the rounds, and of the quiet rounds"
  jq -s -r --arg what ratios "$prog" "$d"/r*[AB].json | column -t
}

if [ -n "$summary_only" ]; then summary "$summary_only"; exit 0; fi
[ $# -ge 2 ] || usage
a=$1 b=$2
shift 2
dir=${dir:-$(mktemp -d /tmp/ab-bench.XXXXXX)}
mkdir -p "$dir"
{
  echo "A: $a (sha256 $(sha256sum "$a" | cut -c1-12))"
  echo "B: $b (sha256 $(sha256sum "$b" | cut -c1-12))"
  echo "rounds: $rounds; concurrency: $concs; bench flags: $*"
  if [ -n "$a_flags$b_flags" ]; then echo "A flags: $a_flags; B flags: $b_flags"; fi
  if [ -n "$lock" ]; then echo "each A/B pair under flock $lock"; fi
  echo "started $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$dir/README"
for r in $(seq "$rounds"); do
  order="A B"
  [ $((r % 2)) = 0 ] && order="B A"
  for c in ${concs//,/ }; do
    if [ -n "$lock" ]; then
      exec 9>"$lock"
      echo "round $r/$rounds, concurrency $c: waiting for $lock" >&2
      flock 9
      echo "$(date -u +%FT%TZ) round $r concurrency $c: lock taken, load average $(cut -d' ' -f1-3 /proc/loadavg)" >>"$dir/README"
    fi
    for side in $order; do
      bin=$a side_flags=$a_flags
      [ "$side" = B ] && bin=$b side_flags=$b_flags
      out=$(printf '%s/r%02d-c%03d-%s.json' "$dir" "$r" "$c" "$side")
      echo "round $r/$rounds, concurrency $c: $side" >&2
      sub=()
      # An older mandate binary has the load tool as its bench command.
      if "$bin" --help 2>/dev/null | grep -q '^  bench '; then sub=(bench); fi
      # shellcheck disable=SC2086 # the side's flags are split on spaces
      "$bin" "${sub[@]}" --json --rounds 1 --concurrency "$c" "$@" $side_flags 2>"$out.stderr" |
        jq --argjson r "$r" --arg s "$side" '. + {ab_round: $r, ab_bin: $s}' >"$out"
    done
    if [ -n "$lock" ]; then exec 9>&-; fi
  done
done
echo "finished $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg); JSON in $dir" | tee -a "$dir/README"
summary "$dir" | tee "$dir/summary.txt"

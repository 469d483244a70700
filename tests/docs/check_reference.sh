#!/usr/bin/env bash
# Fails when docs/configuration.md's settings table differs from what the
# program's own table generates (edge-agent --print-reference).
set -euo pipefail
program="$1" doc="$2" name="$3"
expected="$("$program" --print-reference)"
actual="$(sed -n "/<!-- BEGIN $name reference -->/,/<!-- END $name reference -->/p" "$doc" | sed '1d;$d')"
if [ "$expected" != "$actual" ]; then
  echo "$doc is out of date for $name; regenerate the table with: $name --print-reference" >&2
  diff <(echo "$expected") <(echo "$actual") >&2 || true
  exit 1
fi
echo "$doc matches $name's settings table"

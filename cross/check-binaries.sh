#!/usr/bin/env bash
# Checks the release binaries in dist/ (cross/release.sh runs it last; so does CI):
#   - every size (and the aarch64 budget: at most 4,000,000 bytes, stripped);
#   - static where they should be (no program interpreter);
#   - the glibc floor of every glibc binary, from its dynamic symbol versions
#     (objdump -T): at most GLIBC_2.31, Raspberry Pi OS Bullseye's;
#   - the ARMv6 binary holds ARMv6 code only: its EABI attributes (readelf -A) say
#     v6 / Thumb-1 / VFPv2 with no NEON, no instruction needs ARMv7 (objdump -d), and it
#     runs under `qemu-arm -cpu arm1176` (the Pi 1 and Zero's core).
#
#   bash cross/check-binaries.sh [DIST_DIR]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIST=${1:-${PINCLAW_DIST_DIR:-$REPO/dist}}
GLIBC_FLOOR=2.31
AARCH64_BUDGET=4000000
fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }

shopt -s nullglob
bins=("$DIST"/bin/*/pinclaw)
((${#bins[@]})) || { echo "check-binaries: no $DIST/bin/<target>/pinclaw (run cross/release.sh)" >&2; exit 2; }

for bin in "${bins[@]}"; do
  target=$(basename "$(dirname "$bin")")
  case $target in
    aarch64-*) tools=aarch64-linux-gnu ;;
    arm-* | armv7-*) tools=arm-linux-gnueabihf ;;
    x86_64-*) tools=x86_64-linux-gnu ;;
    *) bad "$target: unknown target"; continue ;;
  esac
  readelf=$tools-readelf objdump=$tools-objdump
  command -v "$readelf" >/dev/null || readelf=readelf
  command -v "$objdump" >/dev/null || objdump=objdump
  size=$(stat -c %s "$bin")
  printf '%-32s %9d bytes (%d KiB)' "$target" "$size" "$((size / 1024))"
  if "$readelf" -lW "$bin" | grep -q 'Requesting program interpreter'; then
    floor=$("$objdump" -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
    printf ', dynamic, glibc >= %s\n' "${floor:-?}"
    if [ -z "$floor" ]; then
      bad "$target: no GLIBC_ symbol versions found by $objdump -T"
    elif [ "$(printf '%s\n%s\n' "$floor" "$GLIBC_FLOOR" | sort -V | tail -n 1)" != "$GLIBC_FLOOR" ]; then
      bad "$target needs glibc $floor, newer than $GLIBC_FLOOR (Raspberry Pi OS Bullseye):"
      "$objdump" -T "$bin" | grep -E "GLIBC_$floor[^0-9.]" | head -n 5 >&2
    fi
    case $target in *-musl*) bad "$target: a musl build should be static" ;; esac
  else
    printf ', static\n'
    case $target in *-gnu*) bad "$target: a glibc build is expected to be dynamic" ;; esac
  fi
  if [[ $target == aarch64-* ]] && [ "$size" -gt "$AARCH64_BUDGET" ]; then
    bad "the aarch64 binary is over its $AARCH64_BUDGET-byte budget ($size)"
  fi

  if [[ $target == arm-* ]]; then
    # ARMv6 hard-float: what `readelf -A` says of every object merged into the binary.
    attrs=$("$readelf" -A "$bin")
    arch=$(sed -n 's/^ *Tag_CPU_arch: //p' <<<"$attrs")
    thumb=$(sed -n 's/^ *Tag_THUMB_ISA_use: //p' <<<"$attrs")
    fp=$(sed -n 's/^ *Tag_FP_arch: //p' <<<"$attrs")
    simd=$(sed -n 's/^ *Tag_Advanced_SIMD_arch: //p' <<<"$attrs")
    echo "  EABI attributes: Tag_CPU_arch $arch, Thumb ${thumb:-none}, FP ${fp:-none}, SIMD ${simd:-none}"
    [[ $arch == v6 || $arch == v6K* || $arch == v6KZ ]] || bad "$target: Tag_CPU_arch is '$arch', not v6"
    [[ $thumb != *Thumb-2* ]] || bad "$target: Thumb-2 code (ARMv7)"
    [[ -z $simd ]] || bad "$target: NEON code ($simd)"
    [[ -z $fp || $fp == VFPv2 ]] || bad "$target: FP arch $fp, not VFPv2"
    # ARMv7-only and NEON instructions, per function. objdump decodes ARM, Thumb and data
    # correctly only with the mapping symbols of an unstripped binary: release.sh keeps
    # one beside the stripped binary (pinclaw.unstripped). Allowed, because they run only
    # where the CPU has the feature, chosen at run time from AT_HWCAP (the ARM1176 has
    # neither): ring's NEON assembly (*_neon, *_NEON, vpaes/bsaes and x25519's local
    # labels), musl's __a_barrier_v7/__a_cas_v7 atomics, and libunwind's save/restore of
    # d16-d31, which it touches only for unwind tables that name those registers (ARMv6
    # code has none).
    unstripped=$(dirname "$bin")/pinclaw.unstripped
    if [ -f "$unstripped" ]; then
      v7=$("$objdump" -d --no-show-raw-insn "$unstripped" | awk '
        /^[0-9a-f]+ <.*>:$/ { fn = substr($2, 2, length($2) - 3); next }
        {
          # "  addr:<TAB>mnemonic<TAB>operands <symbol>"
          n = split($0, f, "\t"); if (n < 2) next
          mn = f[2]; sub(/ +$/, "", mn); ops = (n >= 3) ? f[3] : ""; sub(/ *<.*$/, "", ops)
          hit = 0
          if (mn ~ /^(dmb|dsb|isb|movw|movt|sdiv|udiv|ubfx|sbfx|bfi|bfc|mls|rbit|pldw)(eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?(\.w)?$/) hit = 1
          if (mn ~ /^v[a-z0-9]+\.(i|u|s|p)(8|16|32|64)$/ || mn ~ /^v(ld|st)[1-4]/) hit = 1
          if (ops ~ /(^|[ ,{])(q[0-9]+|d(1[6-9]|2[0-9]|3[01]))([ ,}\[-]|$)/) hit = 1
          if (mn ~ /\.w$/) hit = 1
          if (hit) count[fn]++
        }
        END { for (k in count) print k, count[k] }' | sort)
      dispatched='^(_?(vpaes|bsaes)_.*|ring_core_[0-9_]+__.*(_neon|_NEON|_neon2_.*|vpaes_.*|bsaes_.*)|\._[a-z0-9]+|__a_(barrier|cas)_v7|_ZN9libunwind13Registers_arm[0-9]+(save|restore)VFPv3EPv) '
      allowed=$(grep -E "$dispatched" <<<"$v7" || true)
      other=$(grep -vE "$dispatched" <<<"$v7" | sed '/^$/d' || true)
      echo "  ARMv7/NEON code only in run-time-dispatched functions: $(wc -l <<<"${allowed:-}" | tr -d ' ') (ring NEON, musl v7 atomics, libunwind VFPv3)"
      if [ -n "$other" ]; then
        bad "$target: ARMv7 or NEON instructions in (function, count):"
        echo "$other" >&2
      fi
    else
      echo "  (no pinclaw.unstripped beside it: the instruction scan needs the mapping symbols; skipped)"
    fi
    if command -v qemu-arm >/dev/null; then
      if out=$(qemu-arm -cpu arm1176 "$bin" --version 2>&1); then
        echo "  qemu-arm -cpu arm1176: $out"
      else
        bad "$target does not run under qemu-arm -cpu arm1176: $out"
      fi
    else
      echo "  qemu-arm not installed: not run under -cpu arm1176"
    fi
  fi
done

exit "$fail"

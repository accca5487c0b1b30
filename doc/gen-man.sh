#!/bin/sh
# Section-3 man pages from the installed headers' own comments.
#
#   sh doc/gen-man.sh OUTDIR VERSION include/asyncio.h include/asyncio/*.h ...
#
# One page per header, asyncio-AREA.3 (include/asyncio/AREA.h): the header's
# opening comment, then every declaration in header order with the comment
# written above it, under the header's own "---- Section ----" titles.  Each
# public function gets a page of its own name that is a .so link to its
# header's page, so `man asyncio_loop_call_later` works.  libasyncio.3, from
# include/asyncio.h, lists the header pages.
#
# sh and POSIX awk only: distributions build this with no extra tools.  The
# header conventions it relies on are the ones tests/exports.sh relies on:
# each function declaration starts with ASYNCIO_EXTERN and ends at ';'.
set -eu
[ $# -ge 3 ] || { echo "usage: $0 OUTDIR VERSION HEADER..." >&2; exit 2; }
out=$1 version=$2
shift 2
mkdir -p "$out"

# Prose and code lines become roff: escape backslashes, keep a leading '.'
# or "'" from being read as a request, and write minus signs as \- .
awk_lib='
function roff(s) {
    gsub(/\\/, "\\e", s)
    gsub(/-/, "\\-", s)
    c = substr(s, 1, 1)
    if (c == "." || c == sq) s = "\\&" s
    return s
}
'

overview_list=
for h in "$@"; do
    base=${h##*/}
    case $h in
    */asyncio.h) continue ;;          # the umbrella: libasyncio.3 below
    esac
    area=${base%.h}
    page="asyncio-$area"
    awk -v sq="'" -v page="$page" -v header="asyncio/$base" -v version="$version" \
        -v out="$out" "$awk_lib"'
    # State: prose (a comment at depth 0 on a line of its own) or code
    # (everything else that is not include-guard or extern "C" plumbing).
    BEGIN { depth = 0; skip = 0; guard = 0; nif = 0; incomment = 0; mode = ""
            nfuncs = 0; nbody = 0; intro = ""; seenintro = 0; indecl = 0 }
    function emit(s) { body[++nbody] = s }
    function setmode(m) {
        if (mode == m) return
        if (mode == "code") emit(".EE")
        if (m == "code") { emit(".PP"); emit(".EX") }
        if (m == "prose") emit(".PP")
        mode = m
    }
    function endblock() { setmode("") }
    {
        line = $0
        sub(/[ \t]+$/, "", line)
    }
    # The opening comment, before the include guard, is the page intro.
    !seenintro {
        if (line ~ /^\/\*/) incomment = 1
        if (incomment) {
            t = line
            sub(/^\/\*+ ?/, "", t); sub(/^ \* ?/, "", t); sub(/^ \*$/, "", t)
            if (sub(/ *\*\/$/, "", t)) { incomment = 0; seenintro = 1 }
            sub(/^libasyncio: /, "", t)
            intro = intro t "\n"
            next
        }
        if (line != "") seenintro = 1
    }
    # Preprocessor plumbing that is not API: guard, includes, extern "C".
    /^#ifndef ASYNCIO_[A-Z_]*_H$/ && !guard { guard = 1; getline; next }
    /^#include/ { next }
    /^#if/ { nif++; ifskip[nif] = ($0 ~ /__cplusplus/); if (ifskip[nif]) { skip++; next } }
    /^#endif/ {
        if (nif == 0) next                      # the include guard
        if (ifskip[nif]) { nif--; skip--; next }
        nif--
    }
    skip { next }
    # A comment on lines of its own at depth 0: prose, or a section title.
    depth == 0 && !indecl && line ~ /^\/\*/ {
        c = line
        while (c !~ /\*\/$/ && (getline nl) > 0) { sub(/[ \t]+$/, "", nl); c = c "\n" nl }
        n = split(c, cl, "\n")
        text = ""
        for (i = 1; i <= n; i++) {
            t = cl[i]
            sub(/^\/\*+ ?/, "", t); sub(/^ *\* ?/, "", t); sub(/^ *\*$/, "", t)
            sub(/ *\*\/$/, "", t)
            text = text (i > 1 ? "\n" : "") t
        }
        if (text ~ /^-+ .* -+$/) {
            sub(/^-+ /, "", text); sub(/ -+$/, "", text)
            endblock(); emit(".SS \"" text "\""); next
        }
        setmode("prose")
        n = split(text, tl, "\n")
        for (i = 1; i <= n; i++) {
            if (tl[i] == "") { emit(".PP"); continue }
            emit(roff(tl[i]))
        }
        next
    }
    line == "" { if (depth == 0 && !indecl) endblock(); next }
    # Code: the declaration as written, minus the export macro.
    {
        setmode("code")
        t = line
        if (t ~ /^ASYNCIO_EXTERN /) {
            sub(/^ASYNCIO_EXTERN /, "", t)
            indecl = 1; decl = ""; dedent = 1
        } else if (indecl && dedent && t ~ /^               [ ]*[^ ]/) {
            t = substr(t, 16)       # keep continuation lines aligned
        }
        if (indecl) {
            decl = decl " " t
            if (t ~ /;/) {
                d = decl
                if (match(d, /[A-Za-z_0-9]+[ ]*\(/)) {
                    name = substr(d, RSTART, RLENGTH)
                    sub(/[ ]*\($/, "", name)
                    if (name ~ /^asyncio_/) funcs[++nfuncs] = name
                }
                indecl = 0
            }
        }
        o = t; gsub(/\/\*.*\*\//, "", o); gsub(/"[^"]*"/, "", o)
        depth += gsub(/\{/, "{", o) - gsub(/\}/, "}", o)
        emit(roff(t))
    }
    END {
        endblock()
        f = out "/" page ".3"
        names = page
        for (i = 1; i <= nfuncs; i++) names = names ", " funcs[i]
        n = split(intro, il, "\n")
        summary = ""
        for (i = 1; i <= n && il[i] != ""; i++) summary = summary (i > 1 ? " " : "") il[i]
        sub(/\.  .*/, "", summary); sub(/\.$/, "", summary)
        if (summary == "") summary = header
        printf ".\\\" Generated by doc/gen-man.sh from %s; edit the header, not this page.\n", header > f
        printf ".TH %s 3 \"\" \"libasyncio %s\" \"libasyncio manual\"\n", toupper(page), version > f
        print ".SH NAME" > f
        print names " \\- " roff(summary) > f
        print ".SH LIBRARY" > f
        print "libasyncio (\\fI\\-lasyncio\\fP; \\fBpkg\\-config \\-\\-cflags \\-\\-libs libasyncio\\fP)" > f
        print ".SH SYNOPSIS" > f
        print ".nf" > f
        print ".B #include <asyncio.h>" > f
        print ".fi" > f
        print ".PP" > f
        print "or, for this area alone," > f
        print ".BR \"#include <" header ">\" ." > f
        print ".SH DESCRIPTION" > f
        while (n > 0 && il[n] == "") n--
        for (i = 1; i <= n; i++) {
            if (il[i] == "") { print ".PP" > f; continue }
            print roff(il[i]) > f
        }
        print ".SH DECLARATIONS" > f
        for (i = 1; i <= nbody; i++) {
            # No .PP straight after a section heading.
            if (body[i] == ".PP" && i > 1 && body[i - 1] ~ /^\.SS /) continue
            print body[i] > f
        }
        if (nfuncs > 0) {
        print ".SH RETURN VALUE" > f
        print "Calls returning \\fBint\\fP return 0 (or the count or flag they document)" > f
        print "on success and a negative error code on failure: \\fB\\-errno\\fP or an" > f
        print "\\fBASYNCIO_E*\\fP code; see \\fBasyncio\\-errors\\fP(3) and" > f
        print "\\fBasyncio_strerror\\fP(3).  A call that fails did nothing and will call" > f
        print "nothing back." > f
        }
        print ".SH SEE ALSO" > f
        print "\\fBlibasyncio\\fP(3)" > f
        close(f)
        for (i = 1; i <= nfuncs; i++) {
            g = out "/" funcs[i] ".3"
            print ".so man3/" page ".3" > g
            close(g)
        }
        print page "\t" nfuncs "\t" summary > (out "/.pages")
    }
    ' "$h"
    overview_list="$overview_list $page"
    cat "$out/.pages" >> "$out/.overview"
    rm -f "$out/.pages"
done

# libasyncio.3: the umbrella header's comment and the list of pages.
umbrella=
for h in "$@"; do case $h in */asyncio.h) umbrella=$h ;; esac; done
{
    printf '%s\n' '.\" Generated by doc/gen-man.sh; edit the headers, not this page.'
    printf '.TH LIBASYNCIO 3 "" "libasyncio %s" "libasyncio manual"\n' "$version"
    cat <<'EOF'
.SH NAME
libasyncio \- asyncio's event\-loop API in C, on libevent and OpenSSL
.SH SYNOPSIS
.nf
.B #include <asyncio.h>
.PP
.B cc prog.c $(pkg\-config \-\-cflags \-\-libs libasyncio)
.fi
.SH DESCRIPTION
EOF
    if [ -n "$umbrella" ]; then
        awk -v sq="'" "$awk_lib"'
            NR == 1 && !/^\/\*/ { exit }
            { t = $0; sub(/^\/\*+ ?/, "", t); sub(/^ \* ?/, "", t); sub(/^ \*$/, "", t)
              done = sub(/ *\*\/$/, "", t); sub(/^libasyncio: /, "", t)
              if (t == "") print ".PP"; else print roff(t)
              if (done) exit }' "$umbrella"
    fi
    cat <<'EOF'
.PP
Every public function has a page of its own name, which shows the page of
the header that declares it, with the declarations around it.  The guides
(loop, timers, futures, transports and protocols, TLS, subprocesses,
executor, tasks and streams), a migration guide from libevent and a table
from Python asyncio calls to libasyncio calls are installed with the
documentation (on Debian: /usr/share/doc/libasyncio\-doc).
.SH AREAS
EOF
    tab=$(printf '\t')
    sort "$out/.overview" | while IFS=$tab read -r p n s; do
        printf '.TP\n\\fB%s\\fP(3)\n' "$(printf '%s' "$p" | sed 's/-/\\-/g')"
        if [ "$n" -gt 0 ]; then s="$s ($n functions)"; fi
        printf '%s.\n' "$s" | sed 's/-/\\-/g'
    done
    printf '.SH SEE ALSO\n'
    sort "$out/.overview" | cut -f1 | sed 's/-/\\-/g; s/.*/\\fB&\\fP(3)/; $!s/$/,/'
} > "$out/libasyncio.3"
rm -f "$out/.overview"

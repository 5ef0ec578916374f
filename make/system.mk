# Libraries from Debian's packages that make the system faster, not possible: with HarfBuzz's
# subsetter (libharfbuzz-subset0) WeasyPrint renders a receipt in about 130 ms; without it,
# fontTools subsets the fonts and a receipt takes about 820 ms (make bench-receipts).
# Installed when this runs as root with apt-get; elsewhere a note says what is missing, and
# everything still works.
.PHONY: system

HARFBUZZ_SUBSET := libharfbuzz-subset0

system:
	@ldconfig -p 2>/dev/null | grep -q 'libharfbuzz-subset\.so' \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	       && { apt-get install -y -qq $(HARFBUZZ_SUBSET) >/dev/null 2>&1 \
	            || { apt-get update -qq && apt-get install -y -qq $(HARFBUZZ_SUBSET) >/dev/null; }; }; } \
	  || echo "note: $(HARFBUZZ_SUBSET) is not installed: receipts render with fontTools (slower)"

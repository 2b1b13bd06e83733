# Loupe — build, demo, test, benchmark. Every target installs the system packages it needs.
SYSTEM_PACKAGES := ocl-icd-opencl-dev opencl-headers libpng-dev pocl-opencl-icd clinfo
SWIFT ?= swift
LOUPE := .build/release/loupe

.PHONY: deps build demo test bench clean

# Installs the Debian packages that are missing (idempotent; needs root, as on a fresh machine).
deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build -c release --product loupe

# The main job, end to end: list the devices, then one convolution forward and backward on the
# chosen device (LOUPE_DEVICE, default auto) checked against the reference.
demo: build
	$(LOUPE) devices --build
	$(LOUPE) check

# The whole suite; the conformance table goes to docs/CONFORMANCE.md.
test: deps
	LOUPE_CONFORMANCE_DOC=$(CURDIR)/docs/CONFORMANCE.md $(SWIFT) test

# Kernel benchmark: prints the table and writes Benchmarks/RESULTS.md and Benchmarks/kernels.json.
bench: deps
	$(SWIFT) run -c release KernelBench

clean:
	rm -rf .build

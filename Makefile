# Loupe — build, demo, test, benchmark. Every target installs the system packages it needs.
SYSTEM_PACKAGES := ocl-icd-opencl-dev opencl-headers libpng-dev libjpeg62-turbo-dev pocl-opencl-icd clinfo dataset-fashion-mnist zlib1g-dev
# The JPEG tests' oracle: djpeg, libjpeg-turbo's own decoder.
TEST_SYSTEM_PACKAGES := libjpeg-turbo-progs
PYTHON_TEST_PACKAGES := onnx onnxruntime numpy
SWIFT ?= swift
SHELL := /bin/bash
LOUPE := .build/release/loupe

.PHONY: deps test-deps build demo test bench clean

# Installs those of the Debian packages $(1) that are missing (idempotent; needs root, as on a fresh machine).
define install_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
endef

deps:
	$(call install_missing,$(SYSTEM_PACKAGES))

# deps, djpeg, and the ONNX tests' oracle (onnx builds the models, onnxruntime runs them) when it
# cannot be imported. Tests only: the product never needs them, so build and demo do not install them.
test-deps: deps
	$(call install_missing,$(TEST_SYSTEM_PACKAGES))
	@python3 -c "import onnx, onnxruntime, numpy" 2>/dev/null || { echo "installing: $(PYTHON_TEST_PACKAGES) (pip)"; python3 -m pip install -q $(PYTHON_TEST_PACKAGES); }

build: deps
	$(SWIFT) build -c release --product loupe

# The main job, end to end: the devices, one convolution checked against the reference, then the
# cluttered Fashion-MNIST GAP model (Models/clutternet.onnx, trained by `loupe train` when missing)
# explaining cluttered test images with every method: PNG overlays, .npy maps and JSON sidecars in
# out/demo/maps, the HTML report out/demo/report.html, and the metrics table.
DEMO := out/demo
GAP_MODEL := Models/clutternet.onnx
FASHION_CLASSES := T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot
METHODS := cam gradcam gradcampp layercam eigencam scorecam saliency guided deconv guidedgradcam smoothgrad ig occlusion
demo: build
	$(LOUPE) devices --build
	$(LOUPE) check
	@test -f $(GAP_MODEL) || $(LOUPE) train clutternet --data cluttered-fashion-mnist --epochs 3 --batch 64 --lr 0.002 --optimizer adam \
	  --schedule cosine --seed 1 --test-count 2000 --out $(GAP_MODEL)
	$(LOUPE) evaluate $(GAP_MODEL) --count 32 --faithfulness-count 8 --randomization-count 2 \
	  --save-images $(DEMO)/images --save-count 8 --markdown $(DEMO)/metrics.md --overwrite
	for m in $(METHODS); do $(LOUPE) $$m $(GAP_MODEL) $(DEMO)/images --out $(DEMO)/maps --overwrite --samples 16 --steps 16 || exit 1; done
	$(LOUPE) report $(GAP_MODEL) $(DEMO)/images --class-names "$(FASHION_CLASSES)" --out $(DEMO)/report.html --overwrite
	@echo "demo: maps in $(DEMO)/maps, report $(DEMO)/report.html, metrics $(DEMO)/metrics.md"

# The whole suite (XCTest; no Swift Testing suites exist); the conformance table goes to docs/CONFORMANCE.md.
test: test-deps
	@mkdir -p .build
	set -o pipefail; LOUPE_CONFORMANCE_DOC=$(CURDIR)/docs/CONFORMANCE.md $(SWIFT) test --disable-swift-testing 2>&1 | tee .build/test.log
	@# The conformance table prints after XCTest's summary; end with the summary again, plainly.
	@grep -E "Executed [0-9]+ tests?, with [0-9]+ failures?" .build/test.log | tail -1 | \
	  awk '{ for (i = 1; i <= NF; i++) { if ($$i == "Executed") n = $$(i+1); if ($$i == "with") f = $$(i+1) } } END { print "tests: " n - f " passed, " f " failed" }'

# Kernel benchmark: prints the table and writes Benchmarks/RESULTS.md and Benchmarks/kernels.json.
bench: deps
	$(SWIFT) run -c release KernelBench

clean:
	rm -rf .build

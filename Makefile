# Two commands set up a fresh Debian machine: `make run` and `make test`.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
DATA_DIR ?= ./data
CTEST_ARGS ?=

.PHONY: deps configure build run test clean

deps:
	@./scripts/install-deps.sh

configure: deps
	@if [ ! -f $(BUILD_DIR)/build.ninja ]; then \
	  cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	    -DCMAKE_CXX_COMPILER_LAUNCHER=$$(command -v ccache || true); \
	fi

build: configure
	cmake --build $(BUILD_DIR)

run: build
	mkdir -p $(DATA_DIR)
	$(BUILD_DIR)/server/brook-server --data-dir $(DATA_DIR)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure --timeout 600 -j2 $(CTEST_ARGS)

clean:
	rm -rf $(BUILD_DIR)

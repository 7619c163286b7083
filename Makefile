# Two commands set up a fresh Debian machine: `make run` and `make test`.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
DATA_DIR ?= ./data
CLUSTER_DIR ?= ./cluster-data
CTEST_ARGS ?=

.PHONY: deps configure build run test clean cluster-start cluster-stop cluster-status

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

# A 2 name server, 3 coordinator, 3 broker cluster on loopback (scripts/cluster.sh).
cluster-start: build
	BROOK_BUILD_DIR=$(BUILD_DIR) ./scripts/cluster.sh start $(CLUSTER_DIR)

cluster-stop:
	BROOK_BUILD_DIR=$(BUILD_DIR) ./scripts/cluster.sh stop $(CLUSTER_DIR)

cluster-status:
	BROOK_BUILD_DIR=$(BUILD_DIR) ./scripts/cluster.sh status $(CLUSTER_DIR)

clean:
	rm -rf $(BUILD_DIR)

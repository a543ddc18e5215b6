# nnc - a model-definition compiler: DSL -> specialized C trainers.
#
#   make                 build/nnc and build/libnncrt.a
#   make train [MODEL=models/x.nn] [ARGS="--epochs 1"]
#                        compile, build and train one model (default: cnn_baseline)
#   make mpi             every model's trainer for several processes, in build/bin-mpi/
#   make test            every test (Criterion), plus the generated/ freshness check
#   make generated       regenerate generated/ from models/
#   make bench           nnc against PyTorch, same machine, same run
#   make install PREFIX=/usr/local
#
# Missing packages are installed with apt-get when running as root; otherwise
# the exact command is printed (see `make deps`).

PREFIX  ?= /usr/local
CC      ?= cc
BUILD   := build
MODEL   ?= models/cnn_baseline.nn
ARGS    ?=

WARN    := -Wall -Wextra -Werror
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c11 $(WARN) $(CFLAGS) -Icompiler -I$(BUILD)/gen -Iruntime
# Generated trainers: shapes are constants, so let the compiler specialize for this CPU
# (MARCH=x86-64-v3 builds for AVX2 without AVX-512, as most laptops have).
MARCH   ?= native
TRAINER_CFLAGS ?= -O3 -march=$(MARCH) -ffp-contract=fast -fno-math-errno -fopenmp
# The runtime's flat loops (optimizer updates, batch conversion) vectorize only with these.
RUNTIME_OPT := -O3 -march=$(MARCH) -fno-math-errno
BLAS_CFLAGS = $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS   = $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
RT_LIBS     = $(BLAS_LIBS) -lpng -ljpeg -lz -lm -fopenmp

COMPILER_SRC := compiler/diag.c compiler/ast.c compiler/model.c compiler/schema.c compiler/check.c compiler/summary.c \
                compiler/cgen.c compiler/plan.c compiler/emit.c compiler/infer.c $(sort $(wildcard compiler/layers/*.c))
COMPILER_OBJ := $(COMPILER_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/parser.o $(BUILD)/gen/lexer.o
RUNTIME_SRC  := $(sort $(wildcard runtime/*.c))
RUNTIME_OBJ  := $(RUNTIME_SRC:%.c=$(BUILD)/%.o)
MODELS       := $(sort $(wildcard models/*.nn))
GENERATED    := $(MODELS:models/%.nn=generated/%.c)
# Each kind's tests are tests/layers/KIND/: its model KIND.nn, gradcheck.c and reference.c.
TEST_SRC     := $(sort $(wildcard tests/test_*.c tests/layers/*/*.c))
TEST_MODELS  := $(sort $(wildcard tests/models/*.nn tests/layers/*/*.nn))
TEST_GEN     := $(patsubst %.nn,$(BUILD)/tests/gen/%.c,$(notdir $(TEST_MODELS)))
DEPS_STAMP   := $(BUILD)/.deps-ok
TEST_DEPS_STAMP := $(BUILD)/.test-deps-ok

.PHONY: all deps test-deps mpi-deps test test-asan generated check-generated train mpi bench install clean fuzz reference
.DELETE_ON_ERROR:

all: $(BUILD)/nnc $(BUILD)/libnncrt.a

# ---- dependencies --------------------------------------------------------
# tools/deps.sh builds and links a probe for each package with the flags below,
# the build's own; a stamp records that they passed.
DEPS_ENV = CC='$(CC)' BLAS_CFLAGS='$(BLAS_CFLAGS)' BLAS_LIBS='$(BLAS_LIBS)' BUILD='$(BUILD)'
deps $(DEPS_STAMP):
	@$(DEPS_ENV) sh tools/deps.sh build
	@mkdir -p $(BUILD) && touch $(DEPS_STAMP)

test-deps $(TEST_DEPS_STAMP):
	@$(DEPS_ENV) sh tools/deps.sh test
	@mkdir -p $(BUILD) && touch $(DEPS_STAMP) $(TEST_DEPS_STAMP) $(MPI_DEPS_STAMP)

# ---- the compiler --------------------------------------------------------
$(BUILD)/gen/parser.c $(BUILD)/gen/parser.h: compiler/parser.y | $(DEPS_STAMP)
	@mkdir -p $(BUILD)/gen
	bison -Wall -Werror -d -o $(BUILD)/gen/parser.c $<

$(BUILD)/gen/lexer.c $(BUILD)/gen/lexer.h: compiler/lexer.l $(BUILD)/gen/parser.h
	@mkdir -p $(BUILD)/gen
	flex -o $(BUILD)/gen/lexer.c --header-file=$(BUILD)/gen/lexer.h $<

# flex's skeleton trips a few warnings that are not ours to fix.
$(BUILD)/gen/lexer.o: $(BUILD)/gen/lexer.c
	$(CC) $(ALL_CFLAGS) -Wno-unused-function -Wno-sign-compare -c $< -o $@

$(BUILD)/gen/parser.o: $(BUILD)/gen/parser.c $(BUILD)/gen/lexer.h
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/compiler/%.o: compiler/%.c compiler/*.h compiler/layers/*.h compiler/layers/kinds.def runtime/nncrt.h $(BUILD)/gen/parser.h | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# The compiler shares the runtime's whole-file reading and atomic writing
# (files.c, util.c), built with the compiler's own flags: an installed nnc must
# not carry the runtime's -march=native.
COMPILER_RT_OBJ := $(BUILD)/compiler/rt-files.o $(BUILD)/compiler/rt-util.o $(BUILD)/compiler/rt-checkpoint.o
$(BUILD)/compiler/rt-%.o: runtime/%.c runtime/nncrt.h | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/nnc: $(COMPILER_OBJ) $(BUILD)/compiler/main.o $(COMPILER_RT_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ -lz -lm

# ---- the runtime ---------------------------------------------------------
$(BUILD)/runtime/%.o: runtime/%.c runtime/*.h | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(RUNTIME_OPT) $(BLAS_CFLAGS) -fopenmp -c $< -o $@

$(BUILD)/libnncrt.a: $(RUNTIME_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/nncrt.pc:
	@mkdir -p $(BUILD)
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: nncrt\nDescription: runtime for nnc-generated trainers\nVersion: 0.1.0\nCflags: -I$${includedir} -fopenmp\nLibs: -L$${libdir} -lnncrt %s\n' \
		'$(PREFIX)' '$(RT_LIBS)' > $@

# ---- generated code ------------------------------------------------------
generated/%.c: models/%.nn $(BUILD)/nnc
	$(BUILD)/nnc $< -o $@

generated: $(GENERATED)

# Fails when generated/ is not what the compiler emits today.
check-generated: $(BUILD)/nnc
	@stale=0; for f in $(MODELS); do \
		n=$$(basename $$f .nn); \
		$(BUILD)/nnc $$f -o $(BUILD)/check-$$n.c || exit 1; \
		if ! cmp -s $(BUILD)/check-$$n.c generated/$$n.c; then \
			echo "generated/$$n.c is stale: run 'make generated' and commit it"; stale=1; fi; \
	done; \
	if [ $$stale = 0 ]; then echo "generated/ is fresh ($(words $(MODELS)) models)"; fi; exit $$stale

# ---- trainers ------------------------------------------------------------
$(BUILD)/bin/%: generated/%.c $(BUILD)/libnncrt.a
	@mkdir -p $(BUILD)/bin
	$(CC) -std=c11 $(WARN) $(TRAINER_CFLAGS) -Iruntime $(BLAS_CFLAGS) $< -o $@ $(BUILD)/libnncrt.a $(RT_LIBS)

train: $(BUILD)/bin/$(notdir $(basename $(MODEL)))
	$(BUILD)/bin/$(notdir $(basename $(MODEL))) $(ARGS)

# ---- several processes (MPI) ---------------------------------------------
# The same generated files, linked against libnncrt_mpi.a: the runtime with
# dist.c, its only MPI file, compiled by mpicc with NNC_MPI. Run them with
# `mpirun -np 2 build/bin-mpi/vgg_bn`.
# The trainers are compiled by $(CC), as build/bin/'s are (the same arithmetic, bit for bit), and
# linked with MPI's libraries.
MPICC ?= mpicc
MPI_LIBS = $(shell pkg-config --libs ompi-c 2>/dev/null || $(MPICC) --showme:link)
MPI_DEPS_STAMP := $(BUILD)/.mpi-deps-ok
mpi-deps $(MPI_DEPS_STAMP):
	@$(DEPS_ENV) sh tools/deps.sh mpi
	@mkdir -p $(BUILD) && touch $(DEPS_STAMP) $(MPI_DEPS_STAMP)

$(BUILD)/runtime/dist-mpi.o: runtime/dist.c runtime/*.h | $(MPI_DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(MPICC) $(ALL_CFLAGS) $(RUNTIME_OPT) -DNNC_MPI -c $< -o $@

$(BUILD)/libnncrt_mpi.a: $(filter-out $(BUILD)/runtime/dist.o,$(RUNTIME_OBJ)) $(BUILD)/runtime/dist-mpi.o
	rm -f $@
	ar rcs $@ $^

$(BUILD)/bin-mpi/%: generated/%.c $(BUILD)/libnncrt_mpi.a
	@mkdir -p $(BUILD)/bin-mpi
	$(CC) -std=c11 $(WARN) $(TRAINER_CFLAGS) -Iruntime $(BLAS_CFLAGS) $< -o $@ $(BUILD)/libnncrt_mpi.a $(RT_LIBS) \
		$(MPI_LIBS)

mpi: $(MODELS:models/%.nn=$(BUILD)/bin-mpi/%)

# ---- tests ---------------------------------------------------------------
# Test models, tests/models/NAME.nn and tests/layers/KIND/KIND.nn, become build/tests/gen/NAME.c,
# which the tests include.
$(BUILD)/tests/gen/%.c: tests/models/%.nn $(BUILD)/nnc
	@mkdir -p $(BUILD)/tests/gen
	$(BUILD)/nnc $< -o $@

.SECONDEXPANSION:
$(BUILD)/tests/gen/%.c: tests/layers/%/$$*.nn $(BUILD)/nnc
	@mkdir -p $(BUILD)/tests/gen
	$(BUILD)/nnc $< -o $@

# The MPI tests (tests/test_mpi.c) run the trainers of build/bin-mpi/: in `make test`, not under the sanitizers.
MPI_TESTS ?= 1
MPI_TEST_DEPS := $(if $(filter 1,$(MPI_TESTS)),$(BUILD)/libnncrt_mpi.a $(BUILD)/bin-mpi/cnn_larger $(BUILD)/bin-mpi/vgg_bn)
TEST_CC = $(CC) -std=c11 $(WARN) $(CFLAGS) -fopenmp -Icompiler -I$(BUILD)/gen -Iruntime -Itests -I$(BUILD)/tests/gen \
	$(BLAS_CFLAGS) -DNNC_ROOT='"$(CURDIR)"' -DNNC_BUILD='"$(BUILD)"' -DNNC_MPI_TESTS=$(MPI_TESTS)
TEST_INPUTS := tests/*.h $(BUILD)/libnncrt.a $(GENERATED) $(TEST_GEN)

# The whole suite; the generated models in it are built for the baseline x86-64 (or this CPU's family).
$(BUILD)/tests/nnc_tests: $(TEST_SRC) $(TEST_INPUTS) $(COMPILER_OBJ) | $(TEST_DEPS_STAMP)
	@mkdir -p $(BUILD)/tests
	$(TEST_CC) $(TEST_SRC) $(COMPILER_OBJ) $(BUILD)/libnncrt.a -o $@ -lcriterion $(RT_LIBS)

# The gradient checks and the PyTorch references (every kind's, the seed models')
# once more, with the generated models built for an instruction set: `native`
# (AVX-512 here: a 16-float vector is one register) and `x86-64-v3` (AVX2: two
# registers), where the CPU has it.
NUMERIC_SRC := $(sort $(wildcard tests/layers/*/*.c tests/test_reference_*.c))
HAS_AVX2 := $(shell for f in avx2 fma bmi2 movbe f16c; do grep -qw $$f /proc/cpuinfo 2>/dev/null || exit 0; done; echo 1)
NUMERIC_MARCHES := native $(if $(HAS_AVX2),x86-64-v3)
$(BUILD)/tests/numeric-%: $(NUMERIC_SRC) $(TEST_INPUTS) | $(TEST_DEPS_STAMP)
	@mkdir -p $(BUILD)/tests
	$(TEST_CC) -march=$* $(NUMERIC_SRC) $(BUILD)/libnncrt.a -o $@ -lcriterion $(RT_LIBS)

TEST_TRAINERS := $(MODELS:models/%.nn=$(BUILD)/bin/%)

# Record this machine's one-epoch training digests of every model, which the
# suite then compares (tests/test_digests.c): tests/digests/KEY.txt, KEY from
# tests/tools/digest_key.sh (architecture, vector instruction set, $OPENBLAS_CORETYPE).
.PHONY: digests
digests: $(TEST_TRAINERS)
	@key=$$(sh tests/tools/digest_key.sh) && f=tests/digests/$$key.txt && \
		if sh tests/tools/all_digests.sh $(BUILD)/bin >$$f.tmp; then mv $$f.tmp $$f; else rm -f $$f.tmp; exit 1; fi && \
		cat $$f && echo "wrote $$f"

# The numerical suites first, the whole suite last: its summary closes the output.
test: $(TEST_DEPS_STAMP) $(BUILD)/nnc $(BUILD)/tests/nnc_tests $(NUMERIC_MARCHES:%=$(BUILD)/tests/numeric-%) $(TEST_TRAINERS) \
		$(MPI_TEST_DEPS)
	$(MAKE) --no-print-directory check-generated
	@for m in $(NUMERIC_MARCHES); do echo "== gradient checks and PyTorch references, generated code built with -march=$$m"; \
		$(BUILD)/tests/numeric-$$m --jobs 2 || exit 1; done
	$(if $(HAS_AVX2),,@echo "skipped: the -march=x86-64-v3 numerical suite (this CPU lacks AVX2)")
	@echo "== the whole suite"
	$(BUILD)/tests/nnc_tests --jobs 2

# ---- fuzzing (clang's libFuzzer with AddressSanitizer and UBSan) ----------
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   := -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZERS      := compiler idx checkpoint safetensors image cifar

$(BUILD)/fuzz/fuzz_compiler: tests/fuzz/fuzz_compiler.c $(COMPILER_SRC) $(BUILD)/gen/parser.c $(BUILD)/gen/lexer.c \
		runtime/files.c runtime/util.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -Icompiler -I$(BUILD)/gen -Iruntime $^ -o $@ -lz -lm

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(RUNTIME_SRC) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -fopenmp -Iruntime $(BLAS_CFLAGS) $^ -o $@ $(RT_LIBS)

# Image decoding refuses images above 4,096 pixels (64x64) in its harness (runtime/image.c), as
# libjpeg-turbo's own harnesses cap theirs: a few corrupt bytes declaring 64 megapixels cost libjpeg
# seconds of filling in, which left the harness at 100 executions/s; the check itself is the same code.
$(BUILD)/fuzz/fuzz_image: FUZZ_FLAGS += -DNNC_MAX_IMAGE_PIXELS='(1L << 12)'

# Each harness runs FUZZ_SECONDS on a copy of its seed corpus; findings land in build/fuzz/.
fuzz: $(FUZZERS:%=$(BUILD)/fuzz/fuzz_%)
	@for f in $(FUZZERS); do \
		mkdir -p $(BUILD)/fuzz/corpus_$$f && cp -n tests/fuzz/corpus_$$f/* $(BUILD)/fuzz/corpus_$$f/ 2>/dev/null; \
		echo "== fuzz_$$f for $(FUZZ_SECONDS) s"; \
		(cd $(BUILD)/fuzz && ./fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 corpus_$$f 2>&1 | \
			grep -E "stat::number_of_executed_units|ERROR|SUMMARY|Done") || exit 1; \
	done

# ---- reference fixtures from PyTorch (Debian's python3-torch) ----------
reference: generated $(TEST_GEN)
	/usr/bin/python3 tests/reference/make_fixtures.py

# ---- the test suite under AddressSanitizer and UndefinedBehaviorSanitizer --
SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
test-asan:
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp $(MAKE) --no-print-directory BUILD=build-asan MPI_TESTS=0 \
		CFLAGS="-O1 -g $(SAN)" \
		TRAINER_CFLAGS="-O1 -g -march=native -fopenmp $(SAN)" RUNTIME_OPT="-march=native" test

# ---- benchmark -----------------------------------------------------------
# Extra rows: vgg_bn built for AVX2 without AVX-512 (skipped on other CPUs), and on a CPU with
# AVX512_BF16 the models with bfloat16 convolutions or dense layers compiled with `nnc --precision bf16`.
HAS_BF16 := $(shell grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null && echo 1)
BF16_BENCH_MODELS := mnist_fast vgg vgg_dropout vgg_bn vgg_bn_aug conv4_bn mlp800 cnn_baseline cifar_vgg
BENCH_VARIANTS := $(if $(HAS_AVX2),vgg_bn:x86-64-v3) $(if $(HAS_BF16),$(BF16_BENCH_MODELS:%=%:bf16))
bench: all $(MODELS:models/%.nn=$(BUILD)/bin/%) $(BUILD)/tools/decode_bench \
		$(if $(HAS_BF16),$(BF16_BENCH_MODELS:%=$(BUILD)/bf16/bin/%))
	$(if $(HAS_AVX2),$(MAKE) --no-print-directory BUILD=$(BUILD)/x86-64-v3 MARCH=x86-64-v3 $(BUILD)/x86-64-v3/bin/vgg_bn)
	sh tools/bench.sh $(addprefix --variant ,$(BENCH_VARIANTS)) $(BENCH_ARGS)

# The trainers compiled with `nnc --precision bf16` (bfloat16 products in the layers that fit);
# their C stays in build/bf16/gen/ to be read.
.PRECIOUS: $(BUILD)/bf16/gen/%.c
$(BUILD)/bf16/gen/%.c: models/%.nn $(BUILD)/nnc
	@mkdir -p $(dir $@)
	$(BUILD)/nnc --precision bf16 $< -o $@

$(BUILD)/bf16/bin/%: $(BUILD)/bf16/gen/%.c $(BUILD)/libnncrt.a
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(WARN) $(TRAINER_CFLAGS) -Iruntime $(BLAS_CFLAGS) $< -o $@ $(BUILD)/libnncrt.a $(RT_LIBS)

# The decode rate of image folders (tools/decode_bench.c: the trainer's folder loader, timed).
$(BUILD)/tools/decode_bench: tools/decode_bench.c $(BUILD)/libnncrt.a
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(WARN) -O2 -Iruntime $< -o $@ $(BUILD)/libnncrt.a $(RT_LIBS)

# ---- install -------------------------------------------------------------
install: all $(BUILD)/nncrt.pc
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 $(BUILD)/nnc $(DESTDIR)$(PREFIX)/bin/nnc
	install -m 644 $(BUILD)/libnncrt.a $(DESTDIR)$(PREFIX)/lib/libnncrt.a
	install -m 644 runtime/nncrt.h $(DESTDIR)$(PREFIX)/include/nncrt.h
	install -m 644 $(BUILD)/nncrt.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/nncrt.pc

clean:
	rm -rf $(BUILD)

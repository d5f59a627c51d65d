// SPDX-License-Identifier: MIT
// test_cxx: fuguelog.h used from C++ — a program emits through the inline calls into a real ring, read back.
#include <fuguelog.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "test_cxx_ring.h"

static int failures;

#define CHECK(cond)                                                                                                    \
	do {                                                                                                           \
		if (!(cond)) {                                                                                         \
			std::fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond);                        \
			failures++;                                                                                    \
		}                                                                                                      \
	} while (0)

// The option struct grows only into reserved[]: its size is part of the ABI.
static_assert(sizeof(fl_session_opts) == 128 && offsetof(fl_session_opts, attach_timeout_ns) == 64 &&
		  offsetof(fl_session_opts, reserved) == 72,
	      "fl_session_opts layout");
// fl_stats grows the same way: attached took the front reserved slot.
static_assert(sizeof(fl_stats) == 112 && offsetof(fl_stats, attached) == 48 && offsetof(fl_stats, reserved) == 56,
	      "fl_stats layout");
static_assert(sizeof(fl__session_head) == sizeof(void *), "the level word's address is the whole head");
static_assert(sizeof(std::atomic<uint64_t>) == 8, "the C++ view of the level word is the word");
static_assert((int)FL_KIND_MIN_TRANSCRIPT == (int)FL_LEVEL_FULL && (int)FL_KIND_MIN_ACTION == (int)FL_LEVEL_SPAWNS,
	      "FL_KINDS");

int main()
{
	unsetenv("FUGUE_SESSION_LOG");
	const char *tmp = std::getenv("FL_TEST_TMP");
	setenv("HOME", tmp && *tmp ? tmp : "/tmp", 1); // no logging.conf: the defaults

	CHECK(fl_version() == FUGUELOG_VERSION_NUMBER);

	fl_session_opts o{};
	o.id = "cxx";
	o.level = FL_LEVEL_PROMPTS;
	o.lanes = 1;
	o.lane_size = 4096;
	fl_session *s = nullptr;
	char why[512] = "";
	int rc = fl_session_open(&s, &o, why, sizeof why);
	if (rc != 0) {
		std::fprintf(stderr, "fl_session_open: %d: %s\n", rc, why);
		return 1;
	}

	std::vector<const char *> argv{"agent", "--model", "x"};
	std::string cwd = "/work";
	int64_t spawn = fl_emit_spawn(s, 0, 42, 1, argv.data(), (uint32_t)argv.size(), cwd.c_str());
	int64_t err = fl_emit_error(s, (uint64_t)spawn, 7, "it broke", "cxx");
	std::string prompt = "write a haiku";
	int64_t pr = fl_emit_prompt(s, 0, prompt.data(), prompt.size());
	int64_t filtered = fl_emit_transcript(s, 0, 1, "hidden", 6); // full > prompts: not recorded
	CHECK(spawn > 0 && err > 0 && pr > 0);
	CHECK(filtered == 0);
	CHECK(fl_set_level(s, FL_LEVEL_FULL) == FL_LEVEL_PROMPTS);
	int64_t tr = fl_emit_transcript(s, 0, 2, "shown", 5);
	CHECK(tr > 0);
	fl_stats st{};
	CHECK(fl_session_stats(s, &st) == 0 && st.emitted == 4 && st.dropped == 0 && st.reserved[0] == 0);

	struct cxx_rec rec[8];
	int n = cxx_ring_read("cxx", rec, 8, why, sizeof why);
	if (n != 4) {
		std::fprintf(stderr, "read %d records, want 4: %s\n", n, why);
		return 1;
	}
	const int kinds[] = {FL_KIND_SPAWN, FL_KIND_ERROR, FL_KIND_PROMPT, FL_KIND_TRANSCRIPT};
	const char *texts[] = {"agent /work", "7 it broke", "write a haiku", "2 shown"};
	const int64_t ids[] = {spawn, err, pr, tr};
	for (int i = 0; i < 4; i++) {
		CHECK(rec[i].kind == kinds[i]);
		CHECK(std::strcmp(rec[i].text, texts[i]) == 0);
		CHECK(rec[i].id == (uint64_t)ids[i]);
	}
	CHECK(rec[1].ref == (uint64_t)spawn);
	fl_session_close(s);
	if (failures)
		return 1;
	std::printf("C++%ld: 4 records through fuguelog.h, 1 filtered\n", (long)__cplusplus);
	return 0;
}

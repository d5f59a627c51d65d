/* SPDX-License-Identifier: MIT */
/* rings.h: finding session rings in the shm directory, shared by fugue-logd and fugue-log. */
#ifndef FL_RINGS_H
#define FL_RINGS_H

#include <stddef.h>

#define FL_SHM_DIR "/dev/shm"

/*
 * Calls fn(id, shm_name, arg) for every object in FL_SHM_DIR named
 * <prefix><id> where id passes fl_id_check (the drainer's doorbell,
 * <prefix>@doorbell, is skipped); shm_name is "/<prefix><id>", ready
 * for fl_ring_attach. Names that carry the prefix but a bad id are reported
 * through bad(name, arg) when bad is not NULL (hostile or foreign objects).
 * Stops early and returns fn's value when it is non-zero; returns -errno when
 * the directory cannot be read, else 0.
 */
int fl_rings_scan(const char *prefix, int (*fn)(const char *id, const char *shm_name, void *arg),
		  void (*bad)(const char *name, void *arg), void *arg);

#endif

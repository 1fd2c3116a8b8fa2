/* tests/reg_snapshot.h — the state of a registry home as one string, for
 * tests that must prove a refused or failed operation changed nothing
 * (test_download.c, test_sign.c). */
#ifndef EK_TESTS_REG_SNAPSHOT_H
#define EK_TESTS_REG_SNAPSHOT_H

#include "support.h"

/* Versions (status, size, aliases, highest seen), their files, and the
 * blob store and version trees on disk.  malloc'd. */
char *ts_registry_snapshot(const char *home);

#endif

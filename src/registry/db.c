/* registry/db.c — opening the registry database: refusing files that are not
 * a healthy embedkit registry (never recreating or "repairing" them), the
 * durability settings, forward schema migrations, and the SQL helpers the
 * other registry files use.
 *
 * Why these settings: WAL lets readers (resolving `--model name@alias`) run
 * while an import writes; synchronous=FULL makes a commit durable when it
 * returns, which the READY flip relies on; every write starts with BEGIN
 * IMMEDIATE so two writers queue on busy_timeout instead of failing half way
 * with SQLITE_BUSY on lock upgrade. */
#include "registry/reg.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/ctx.h"

#define REG_APP_ID 0x454b5247 /* "EKRG" in PRAGMA application_id */

/* Forward migrations: entry i brings user_version i to i + 1.  Never edit a
 * released entry; append a new one and bump EK_REGISTRY_SCHEMA. */
static const char *const migrations[EK_REGISTRY_SCHEMA] = {
    /* 0 -> 1: the initial schema. */
    "CREATE TABLE models("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  created_at INTEGER NOT NULL,"
    "  highest_version INTEGER NOT NULL DEFAULT 0);" /* anti-rollback floor */
    "CREATE TABLE versions("
    "  id INTEGER PRIMARY KEY,"
    "  model_id INTEGER NOT NULL REFERENCES models(id),"
    "  version INTEGER NOT NULL CHECK(version > 0),"
    "  status TEXT NOT NULL CHECK(status IN"
    "    ('PENDING','READY','FAILED','CORRUPT','RETIRED')),"
    "  created_at INTEGER NOT NULL,"
    "  ready_at INTEGER,"
    "  source TEXT NOT NULL DEFAULT '',"
    "  total_bytes INTEGER NOT NULL DEFAULT 0,"
    "  reason TEXT NOT NULL DEFAULT '',"
    "  importer_pid INTEGER,"
    "  golden_embed_ms REAL,"
    "  UNIQUE(model_id, version));"
    "CREATE TABLE files("
    "  version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
    "  path TEXT NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  sha256 TEXT NOT NULL CHECK(length(sha256) = 64),"
    "  PRIMARY KEY(version_id, path));"
    "CREATE INDEX files_by_sha ON files(sha256);"
    "CREATE TABLE aliases("
    "  model_id INTEGER NOT NULL REFERENCES models(id),"
    "  alias TEXT NOT NULL CHECK(alias <> 'latest'),"
    "  version_id INTEGER NOT NULL REFERENCES versions(id),"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY(model_id, alias));"
    "CREATE TABLE events("
    "  id INTEGER PRIMARY KEY,"
    "  at INTEGER NOT NULL,"
    "  who TEXT NOT NULL,"
    "  model TEXT NOT NULL DEFAULT '',"
    "  version INTEGER NOT NULL DEFAULT 0,"
    "  action TEXT NOT NULL,"
    "  detail TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE goldens("
    "  version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
    "  idx INTEGER NOT NULL,"
    "  text TEXT NOT NULL,"
    "  dim INTEGER NOT NULL,"
    "  embedding BLOB NOT NULL,"
    "  PRIMARY KEY(version_id, idx));"
    "CREATE TABLE health("
    "  id INTEGER PRIMARY KEY,"
    "  version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
    "  at INTEGER NOT NULL,"
    "  result TEXT NOT NULL CHECK(result IN ('healthy','degraded','unhealthy')),"
    "  reason TEXT NOT NULL DEFAULT '',"
    "  min_cosine REAL, load_ms REAL, embed_ms REAL);"
    /* The event log is append-only. */
    "CREATE TRIGGER events_no_update BEFORE UPDATE ON events"
    "  BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;"
    "CREATE TRIGGER events_no_delete BEFORE DELETE ON events"
    "  BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;"
    /* A version's identity and files are fixed once it leaves PENDING. */
    "CREATE TRIGGER versions_fixed BEFORE UPDATE OF model_id, version, total_bytes"
    "  ON versions WHEN OLD.status <> 'PENDING'"
    "  BEGIN SELECT RAISE(ABORT, 'a version is immutable once imported'); END;"
    "CREATE TRIGGER versions_no_back BEFORE UPDATE OF status ON versions"
    "  WHEN OLD.status <> 'PENDING' AND NEW.status IN ('PENDING','READY')"
    "   AND NOT (OLD.status = 'CORRUPT' AND NEW.status = 'READY')"
    "  BEGIN SELECT RAISE(ABORT, 'a version cannot go back to PENDING or READY'); END;"
    "CREATE TRIGGER files_fixed_ins BEFORE INSERT ON files"
    "  WHEN (SELECT status FROM versions WHERE id = NEW.version_id) <> 'PENDING'"
    "  BEGIN SELECT RAISE(ABORT, 'files of an imported version are immutable'); END;"
    "CREATE TRIGGER files_fixed_upd BEFORE UPDATE ON files"
    "  BEGIN SELECT RAISE(ABORT, 'files of an imported version are immutable'); END;",
    /* 1 -> 2: signed models (docs/SIGNING.md).  Trusted minisign keys, per
     * model name or global (scope ''), and each version's provenance: a
     * version without a row was imported with `ek models add` (unsigned). */
    "CREATE TABLE trusted_keys("
    "  key_id TEXT NOT NULL CHECK(length(key_id) = 16),"
    "  scope TEXT NOT NULL DEFAULT '',"
    "  public_key TEXT NOT NULL,"
    "  comment TEXT NOT NULL DEFAULT '',"
    "  added_at INTEGER NOT NULL,"
    "  PRIMARY KEY(key_id, scope));"
    "CREATE TABLE provenance("
    "  version_id INTEGER PRIMARY KEY REFERENCES versions(id) ON DELETE CASCADE,"
    "  signed INTEGER NOT NULL CHECK(signed IN (0, 1)),"
    "  key_id TEXT NOT NULL DEFAULT '',"
    "  trusted_comment TEXT NOT NULL DEFAULT '',"
    "  manifest_sha256 TEXT NOT NULL DEFAULT '',"
    "  origin TEXT NOT NULL DEFAULT '',"
    "  repo TEXT NOT NULL DEFAULT '',"
    "  revision TEXT NOT NULL DEFAULT '');"
    "CREATE TRIGGER provenance_fixed BEFORE UPDATE ON provenance"
    "  BEGIN SELECT RAISE(ABORT, 'the provenance of a version is immutable'); END;",
    /* 2 -> 3: registry-wide settings (verify_on_load: docs/SIGNING.md). */
    "CREATE TABLE settings("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL);",
};

int64_t reg_now(void) { return (int64_t)time(NULL); }

int reg_sql_fail(struct ek_registry *r, ek_err *e, int rc, const char *what) {
    const char *m = r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return ek_err_set(e, EK_ERR_IO,
                          "%s: %s: the registry is locked by another process (waited %d ms); "
                          "try again when it finishes", r->db_path, what, r->busy_timeout_ms);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return ek_err_set(e, EK_ERR_FORMAT,
                          "%s: %s: the database is damaged (%s); the file was left as it is: "
                          "restore it from a backup or move it away", r->db_path, what, m);
    case SQLITE_FULL:
        return ek_err_set(e, EK_ERR_IO, "%s: %s: disk full", r->db_path, what);
    case SQLITE_CONSTRAINT:
        return ek_err_set(e, EK_ERR_INVALID_ARG, "%s: %s: %s", r->db_path, what, m);
    default:
        return ek_err_set(e, EK_ERR_IO, "%s: %s: %s", r->db_path, what, m);
    }
}

int reg_exec(struct ek_registry *r, const char *sql, const char *what, ek_err *e) {
    int rc = sqlite3_exec(r->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? EK_OK : reg_sql_fail(r, e, rc, what);
}

int reg_begin(struct ek_registry *r, ek_err *e) {
    return reg_exec(r, "BEGIN IMMEDIATE", "starting a write", e);
}

int reg_commit(struct ek_registry *r, ek_err *e) {
    int rc = reg_exec(r, "COMMIT", "committing", e);
    if (rc) reg_rollback(r);
    return rc;
}

void reg_rollback(struct ek_registry *r) {
    if (!sqlite3_get_autocommit(r->db)) sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
}

int reg_prepare(struct ek_registry *r, const char *sql, sqlite3_stmt **st, ek_err *e) {
    int rc = sqlite3_prepare_v2(r->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? EK_OK : reg_sql_fail(r, e, rc, "preparing a query");
}

int reg_event(struct ek_registry *r, const char *model, int64_t version, const char *action,
              const char *detail, ek_err *e) {
    sqlite3_stmt *st;
    int rc = reg_prepare(r, "INSERT INTO events(at, who, model, version, action, detail) "
                            "VALUES(?,?,?,?,?,?)", &st, e);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, reg_now());
    sqlite3_bind_text(st, 2, r->who, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, model ? model : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, version);
    sqlite3_bind_text(st, 5, action, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, detail ? detail : "", -1, SQLITE_STATIC);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    return s == SQLITE_DONE ? EK_OK : reg_sql_fail(r, e, s, "appending to the event log");
}

int64_t reg_model_id(struct ek_registry *r, const char *name, ek_err *e) {
    sqlite3_stmt *st;
    if (reg_prepare(r, "SELECT id FROM models WHERE name = ?", &st, e)) return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int s = sqlite3_step(st);
    int64_t id = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (s != SQLITE_ROW && s != SQLITE_DONE) {
        reg_sql_fail(r, e, s, "looking up a model");
        return -1;
    }
    return id;
}

/* One integer from a pragma or query; -1 on error. */
static int64_t query_int(struct ek_registry *r, const char *sql, ek_err *e) {
    sqlite3_stmt *st;
    if (reg_prepare(r, sql, &st, e)) return -1;
    int s = sqlite3_step(st);
    int64_t v = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (s != SQLITE_ROW && s != SQLITE_DONE) {
        reg_sql_fail(r, e, s, sql);
        return -1;
    }
    return v;
}

/* An existing database file must at least look like SQLite: a 0-byte or
 * foreign file would otherwise be silently turned into a new empty one. */
static int check_header(const char *path, ek_err *e) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ek_err_set(e, EK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char head[16];
    ssize_t n = read(fd, head, sizeof head);
    struct stat sb;
    int st_ok = fstat(fd, &sb) == 0;
    close(fd);
    if (!st_ok || !S_ISREG(sb.st_mode))
        return ek_err_set(e, EK_ERR_IO, "%s: not a regular file", path);
    if (n != (ssize_t)sizeof head || memcmp(head, "SQLite format 3", 16) != 0 || sb.st_size < 512)
        return ek_err_set(e, EK_ERR_FORMAT,
                          "%s: not a SQLite database (%lld bytes, bad header); the registry "
                          "refuses to use it and left the file untouched: restore it from a "
                          "backup or move it away", path, (long long)sb.st_size);
    return EK_OK;
}

static int set_pragmas(struct ek_registry *r, ek_err *e) {
    int rc = reg_exec(r, "PRAGMA foreign_keys = ON", "enabling foreign keys", e);
    if (!rc) rc = reg_exec(r, "PRAGMA synchronous = FULL", "setting synchronous=FULL", e);
    if (rc) return rc;
    /* journal_mode is stored in the file; asking again is a no-op once set. */
    sqlite3_stmt *st;
    if ((rc = reg_prepare(r, "PRAGMA journal_mode = WAL", &st, e))) return rc;
    int s = sqlite3_step(st);
    int wal = s == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    if (s != SQLITE_ROW) return reg_sql_fail(r, e, s, "setting WAL mode");
    if (!wal) return ek_err_set(e, EK_ERR_IO, "%s: could not switch to WAL mode", r->db_path);
    return EK_OK;
}

static int open_db(struct ek_registry *r, const char *path, int create, ek_err *e) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &r->db, flags, NULL);
    if (rc != SQLITE_OK) {
        int st = reg_sql_fail(r, e, rc, "opening");
        sqlite3_close(r->db);
        r->db = NULL;
        return st;
    }
    sqlite3_busy_timeout(r->db, r->busy_timeout_ms);
    sqlite3_extended_result_codes(r->db, 1);
    /* Pragmas that write (journal_mode) only once the file proved ours. */
    return create ? set_pragmas(r, e) : EK_OK;
}

/* A new registry database is built under a temporary name and linked into
 * place, so a crash never leaves a half-initialised registry.db (which the
 * next open would have to refuse) and two first-time openers cannot both
 * create one: link() fails for the loser, who opens the winner's file. */
static int create_db(struct ek_registry *r, ek_err *e) {
    char tmp[sizeof r->db_path];
    if (reg_path(tmp, sizeof tmp, e, "%s.new-%ld", r->db_path, (long)getpid())) return e->status;
    unlink(tmp);
    char saved[sizeof r->db_path];
    memcpy(saved, r->db_path, sizeof saved);
    snprintf(r->db_path, sizeof r->db_path, "%s", tmp);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA application_id = %d", REG_APP_ID);
    int rc = open_db(r, tmp, 1, e);
    if (!rc) rc = reg_exec(r, sql, "marking the database", e);
    sqlite3_close(r->db); /* checkpoints and removes the -wal */
    r->db = NULL;
    memcpy(r->db_path, saved, sizeof saved);
    if (!rc && link(tmp, r->db_path) != 0 && errno != EEXIST)
        rc = ek_err_set(e, EK_ERR_IO, "%s: cannot install: %s", r->db_path, strerror(errno));
    unlink(tmp);
    if (!rc) rc = reg_fsync_dir(r->home, e);
    return rc;
}

static int migrate(struct ek_registry *r, ek_err *e) {
    int64_t v = query_int(r, "PRAGMA user_version", e);
    if (v < 0) return e->status;
    if (v > EK_REGISTRY_SCHEMA)
        return ek_err_set(e, EK_ERR_UNSUPPORTED,
                          "%s: registry schema %lld was written by a newer embedkit (this one "
                          "knows up to %d); refusing to touch it", r->db_path, (long long)v,
                          EK_REGISTRY_SCHEMA);
    if (v == EK_REGISTRY_SCHEMA) return EK_OK;
    int rc = reg_begin(r, e);
    if (rc) return rc;
    /* Another process may have migrated while we waited for the lock. */
    v = query_int(r, "PRAGMA user_version", e);
    for (; !rc && v >= 0 && v < EK_REGISTRY_SCHEMA; v++) {
        char what[64];
        snprintf(what, sizeof what, "migrating schema %lld to %lld", (long long)v, (long long)v + 1);
        rc = reg_exec(r, migrations[v], what, e);
        if (!rc) {
            char sql[64];
            snprintf(sql, sizeof sql, "PRAGMA user_version = %lld", (long long)v + 1);
            rc = reg_exec(r, sql, what, e);
        }
        if (!rc) rc = reg_event(r, NULL, 0, "migrate", what, e);
    }
    if (v < 0 && !rc) rc = e->status;
    if (rc) {
        reg_rollback(r);
        return rc;
    }
    return reg_commit(r, e);
}

/* quick_check reads every page: cheap for a registry, and it catches a
 * truncated or overwritten file before anything is written to it. */
static int check_integrity(struct ek_registry *r, ek_err *e) {
    int64_t app = query_int(r, "PRAGMA application_id", e);
    if (app < 0) return e->status;
    if (app != REG_APP_ID)
        return ek_err_set(e, EK_ERR_FORMAT,
                          "%s: a SQLite database, but not an embedkit registry (application_id "
                          "%lld); left untouched", r->db_path, (long long)app);
    sqlite3_stmt *st;
    int rc = reg_prepare(r, "PRAGMA quick_check(1)", &st, e);
    if (rc) return rc;
    int s = sqlite3_step(st);
    char res[256] = "";
    if (s == SQLITE_ROW) snprintf(res, sizeof res, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (s != SQLITE_ROW) return reg_sql_fail(r, e, s, "checking integrity");
    if (strcmp(res, "ok"))
        return ek_err_set(e, EK_ERR_FORMAT,
                          "%s: the database is damaged (quick_check: %s); the file was left as "
                          "it is: restore it from a backup or move it away", r->db_path, res);
    int64_t v = query_int(r, "PRAGMA user_version", e);
    if (v < 0) return e->status;
    if (v > EK_REGISTRY_SCHEMA)
        return ek_err_set(e, EK_ERR_UNSUPPORTED,
                          "%s: registry schema %lld was written by a newer embedkit (this one "
                          "knows up to %d); refusing to touch it", r->db_path, (long long)v,
                          EK_REGISTRY_SCHEMA);
    return EK_OK;
}

static void default_who(char *buf, size_t cap) {
    struct passwd pw, *res = NULL;
    char tmp[1024];
    if (getpwuid_r(geteuid(), &pw, tmp, sizeof tmp, &res) == 0 && res)
        snprintf(buf, cap, "%s (pid %ld)", res->pw_name, (long)getpid());
    else
        snprintf(buf, cap, "uid %ld (pid %ld)", (long)geteuid(), (long)getpid());
}

ek_status ek_registry_open(ek_ctx *ctx, const char *home, const ek_registry_options *opts,
                           ek_registry **out) {
    if (!ctx || !out) return EK_ERR_INVALID_ARG;
    *out = NULL;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    if (!home || !*home)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "registry home: empty path");
    if (sodium_init() < 0) return ek_err_set(e, EK_ERR_INTERNAL, "libsodium failed to initialise");
    struct ek_registry *r = calloc(1, sizeof *r);
    if (!r) return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    int rc = reg_path(r->home, sizeof r->home, e, "%s", home);
    if (!rc) rc = reg_path(r->db_path, sizeof r->db_path, e, "%s/registry.db", home);
    r->busy_timeout_ms = opts && opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : 5000;
    if (opts && opts->who && *opts->who) snprintf(r->who, sizeof r->who, "%s", opts->who);
    else default_who(r->who, sizeof r->who);
    static const char *const subdirs[] = {"", "/blobs", "/models", "/staging", "/locks"};
    for (size_t i = 0; !rc && i < sizeof subdirs / sizeof subdirs[0]; i++) {
        char p[3300];
        rc = reg_path(p, sizeof p, e, "%s%s", home, subdirs[i]);
        if (!rc) rc = reg_mkdirs(p, e);
    }
    struct stat sb;
    if (!rc && lstat(r->db_path, &sb) != 0) {
        if (errno != ENOENT) rc = ek_err_set(e, EK_ERR_IO, "%s: %s", r->db_path, strerror(errno));
        else rc = create_db(r, e);
    }
    if (!rc) rc = check_header(r->db_path, e);
    if (!rc) rc = open_db(r, r->db_path, 0, e);
    if (!rc) rc = check_integrity(r, e);
    if (!rc) rc = set_pragmas(r, e);
    if (!rc) rc = migrate(r, e);
    if (!rc) rc = reg_recover(r, e);
    if (rc) {
        ek_registry_close(r);
        return (ek_status)rc;
    }
    *out = r;
    return EK_OK;
}

void ek_registry_close(ek_registry *r) {
    if (!r) return;
    if (r->db) sqlite3_close(r->db);
    free(r);
}

const char *ek_registry_home(const ek_registry *r) { return r ? r->home : NULL; }

ek_status ek_registry_default_home(ek_ctx *ctx, char *buf, size_t cap) {
    if (!ctx || !buf || !cap) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    const char *v = getenv("EK_HOME");
    if (v && *v) return (ek_status)reg_path(buf, cap, e, "%s", v);
    v = getenv("XDG_DATA_HOME");
    if (v && *v == '/') return (ek_status)reg_path(buf, cap, e, "%s/embedkit", v);
    v = getenv("HOME");
    if (!v || !*v)
        return ek_err_set(e, EK_ERR_INVALID_ARG,
                          "no registry home: set EK_HOME (or HOME) or pass --home DIR");
    return (ek_status)reg_path(buf, cap, e, "%s/.local/share/embedkit", v);
}

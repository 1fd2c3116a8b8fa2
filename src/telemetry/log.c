/* telemetry/log.c — structured logs: one record per line, human text on a
 * terminal, JSON lines otherwise (for collectors).  Each record is formatted
 * into a stack buffer and written with one fwrite, so records from
 * different threads never interleave. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "embedkit_pipeline.h"

struct ek_logger {
    FILE *out;
    ek_log_level level;
    ek_log_format format;  /* TEXT or JSON once created */
    ek_clock clock;
};

static const char *level_names[] = {"debug", "info", "warn", "error"};

int ek_log_level_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, level_names[i])) return i;
    if (!strcmp(name, "warning")) return EK_LOG_WARN;
    return -1;
}

ek_status ek_logger_new(FILE *out, ek_log_level level, ek_log_format format,
                        const ek_clock *clock, ek_logger **log) {
    if (!out || !log || (unsigned)level > EK_LOG_ERROR || (unsigned)format > EK_LOG_JSON)
        return EK_ERR_INVALID_ARG;
    ek_logger *l = calloc(1, sizeof *l);
    if (!l) return EK_ERR_NOMEM;
    l->out = out;
    l->level = level;
    if (format == EK_LOG_AUTO) format = isatty(fileno(out)) ? EK_LOG_TEXT : EK_LOG_JSON;
    l->format = format;
    l->clock = clock ? *clock : ek_clock_system();
    *log = l;
    return EK_OK;
}

void ek_logger_free(ek_logger *log) { free(log); }

int ek_logger_enabled(const ek_logger *log, ek_log_level level) {
    return log && level >= log->level;
}

typedef struct lbuf {
    char b[4096];
    size_t n;
} lbuf;

static void put(lbuf *b, const char *s, size_t len) {
    if (len > sizeof b->b - 2 - b->n) len = sizeof b->b - 2 - b->n; /* room for '\n' */
    memcpy(b->b + b->n, s, len);
    b->n += len;
}

static void puts_(lbuf *b, const char *s) { put(b, s, strlen(s)); }

static void put_json_string(lbuf *b, const char *s) {
    puts_(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"') puts_(b, "\\\"");
        else if (c == '\\') puts_(b, "\\\\");
        else if (c == '\n') puts_(b, "\\n");
        else if (c == '\t') puts_(b, "\\t");
        else if (c == '\r') puts_(b, "\\r");
        else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            puts_(b, esc);
        } else put(b, s, 1);
    }
    puts_(b, "\"");
}

/* Text values are quoted only when they contain spaces, quotes or '='. */
static void put_text_value(lbuf *b, const char *s) {
    int plain = *s != '\0';
    for (const char *p = s; *p; p++)
        if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20) plain = 0;
    if (plain) puts_(b, s);
    else put_json_string(b, s);
}

static void put_num(lbuf *b, double v) {
    char num[40];
    if (v != v || v > 1e300 || v < -1e300) snprintf(num, sizeof num, "null");
    else if (v == (double)(long long)v && v < 9e15 && v > -9e15) snprintf(num, sizeof num, "%lld", (long long)v);
    else snprintf(num, sizeof num, "%.6g", v);
    puts_(b, num);
}

void ek_log(ek_logger *log, ek_log_level level, const char *msg,
            const ek_log_field *fields, int n_fields) {
    if (!ek_logger_enabled(log, level)) return;
    int64_t ns = log->clock.wall_ns ? log->clock.wall_ns(log->clock.arg) : 0;
    time_t secs = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char ts[96];
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ns % 1000000000 / 1000000));
    lbuf b;
    b.n = 0;
    if (log->format == EK_LOG_JSON) {
        puts_(&b, "{\"level\":\"");
        puts_(&b, level_names[level]);
        puts_(&b, "\",\"time\":\"");
        puts_(&b, ts);
        puts_(&b, "\",\"msg\":");
        put_json_string(&b, msg ? msg : "");
        for (int i = 0; i < n_fields; i++) {
            puts_(&b, ",");
            put_json_string(&b, fields[i].key);
            puts_(&b, ":");
            if (fields[i].str) put_json_string(&b, fields[i].str);
            else put_num(&b, fields[i].num);
        }
        puts_(&b, "}");
    } else {
        static const char *upper[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
        puts_(&b, ts);
        puts_(&b, " ");
        puts_(&b, upper[level]);
        puts_(&b, " ");
        puts_(&b, msg ? msg : "");
        for (int i = 0; i < n_fields; i++) {
            puts_(&b, " ");
            puts_(&b, fields[i].key);
            puts_(&b, "=");
            if (fields[i].str) put_text_value(&b, fields[i].str);
            else put_num(&b, fields[i].num);
        }
    }
    b.b[b.n++] = '\n';
    fwrite(b.b, 1, b.n, log->out);
    fflush(log->out);
}

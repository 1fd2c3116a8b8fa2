/* pipeline/config_yaml.c — the configuration file: YAML read with libyaml's
 * document API (which keeps every node's line), nested mappings flattened to
 * dotted keys ("breaker:\n  wait_open_s: 30" is breaker.wait_open_s).
 * Every problem is reported with the file, the line and the key: unknown
 * keys (with the closest known key as a suggestion), wrong types (a list or
 * a mapping where a value belongs, a value where a section belongs), values
 * out of range, duplicates. */
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "pipeline/config_int.h"

typedef struct walk {
    ek_config *cfg;
    yaml_document_t *doc;
    const char *path;
    char *errs;
    size_t cap;
    int n_err;
    char seen[EK_CONFIG_MAX_KEYS];
} walk;

static int is_section(const char *prefix) {
    size_t n = strlen(prefix);
    for (int i = 0; i < ek_config_key_count(); i++)
        if (!strncmp(ek_config_key(i), prefix, n) && ek_config_key(i)[n] == '.') return 1;
    return 0;
}

static void unknown(walk *w, const char *key, size_t line) {
    const char *s = ek_config_suggest(key);
    ek_config_errf(w->errs, w->cap, "%s:%zu: unknown key \"%s\"%s%s%s", w->path, line, key,
                   s ? " (did you mean \"" : "", s ? s : "", s ? "\"?)" : "");
    w->n_err++;
}

static void walk_mapping(walk *w, yaml_node_t *map, const char *prefix) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(w->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(w->doc, p->value);
        size_t line = kn->start_mark.line + 1;
        if (kn->type != YAML_SCALAR_NODE) {
            ek_config_errf(w->errs, w->cap, "%s:%zu: keys must be plain names", w->path, line);
            w->n_err++;
            continue;
        }
        char key[256];
        snprintf(key, sizeof key, "%s%s%.*s", prefix, *prefix ? "." : "",
                 (int)kn->data.scalar.length, (const char *)kn->data.scalar.value);
        int k = ek_config_find_key(key);
        if (vn->type == YAML_MAPPING_NODE) {
            if (k >= 0) {
                ek_config_errf(w->errs, w->cap, "%s:%zu: %s: expected a value, found a mapping", w->path, line, key);
                w->n_err++;
            } else if (!is_section(key)) {
                unknown(w, key, line);
            } else {
                walk_mapping(w, vn, key);
            }
            continue;
        }
        if (k < 0) {
            if (is_section(key)) {
                ek_config_errf(w->errs, w->cap, "%s:%zu: %s: is a section, expected a mapping of its keys",
                               w->path, line, key);
                w->n_err++;
            } else {
                unknown(w, key, line);
            }
            continue;
        }
        if (vn->type == YAML_SEQUENCE_NODE) {
            ek_config_errf(w->errs, w->cap, "%s:%zu: %s: expected a value, found a list", w->path, line, key);
            w->n_err++;
            continue;
        }
        if (w->seen[k]) {
            ek_config_errf(w->errs, w->cap, "%s:%zu: %s: duplicate key", w->path, line, key);
            w->n_err++;
            continue;
        }
        w->seen[k] = 1;
        char value[1024];
        if (vn->data.scalar.length >= sizeof value) {
            ek_config_errf(w->errs, w->cap, "%s:%zu: %s: value too long", w->path, line, key);
            w->n_err++;
            continue;
        }
        memcpy(value, vn->data.scalar.value, vn->data.scalar.length);
        value[vn->data.scalar.length] = '\0';
        int plain = vn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (plain && (!strcmp(value, "~") || !strcmp(value, "null") || !value[0])) {
            ek_config_errf(w->errs, w->cap, "%s:%zu: %s: has no value", w->path, line, key);
            w->n_err++;
            continue;
        }
        char where[600];
        snprintf(where, sizeof where, "%s:%zu", w->path, line);
        w->n_err += ek_config_apply(w->cfg, k, value, EK_SRC_FILE, where, where, w->errs, w->cap);
    }
}

int ek_config_load_file(ek_config *cfg, const char *path, char *errs, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        ek_config_errf(errs, cap, "%s: cannot open the configuration file", path);
        return 1;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int n_err = 0;
    if (!yaml_parser_load(&parser, &doc)) {
        ek_config_errf(errs, cap, "%s:%zu: YAML syntax error: %s", path, parser.problem_mark.line + 1,
                       parser.problem ? parser.problem : "unreadable");
        yaml_parser_delete(&parser);
        fclose(f);
        return 1;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && root->type == YAML_MAPPING_NODE) {
        walk w = {cfg, &doc, path, errs, cap, 0, {0}};
        walk_mapping(&w, root, "");
        n_err = w.n_err;
    } else if (root && !(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0)) {
        ek_config_errf(errs, cap, "%s:%zu: the configuration must be a mapping of keys", path,
                       root->start_mark.line + 1);
        n_err = 1;
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return n_err;
}

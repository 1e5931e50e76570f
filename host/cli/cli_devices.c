/* tern devices: every device tern can use (the CPU and each OpenCL device of every platform), what
 * it offers, and with --probe its measured speed on a model or a preset shape. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cl/cl_device.h"
#include "../generate/devices.h"
#include "../tern.h"
#include "cli.h"

static const char devices_usage[] =
    "Usage: tern devices [--probe | --tune] [-m MODEL | --shape NAME] [--reprobe] [-t N] [--json]\n"
    "\n"
    "      --probe         also measure each device on a model: one layer's decode step and\n"
    "                      prefill time per token, the head, and the hidden-state transfer\n"
    "                      (from the probe cache when present)\n"
    "      --tune          measure the kernel parameters of each OpenCL device on a model (design,\n"
    "                      work-group size, lanes per row, matmul block size) and store the best\n"
    "                      in the cache folder, where later runs on that device find them\n"
    "      --quick         with --tune: only the device's own design and work-group sizes\n"
    "  -m, --model PATH    the model to probe or tune with\n"
    "      --shape NAME    probe or tune with a random model of a preset shape: tiny, 2b4t, 3b\n"
    "      --reprobe       measure again instead of reading the probe cache\n"
    "  -t, --threads N     CPU threads (default: physical cores)\n"
    "      --json          print JSON instead of a table\n"
    "  -h, --help          this help\n"
    "\n"
    "Devices that fail to build tern's kernels or its self-test are dropped with a notice.\n";

static const char *kind_name(enum tern_device_kind k) {
    return k == TERN_DEVICE_GPU ? "GPU" : k == TERN_DEVICE_ACCEL ? "accelerator" : "CPU";
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void print_json(const struct tern_registry *reg, bool probed) {
    printf("[\n");
    for (int i = 0; i < reg->n; i++) {
        const struct tern_registry_entry *e = &reg->e[i];
        const struct tern_device_info *in = &e->info;
        printf("  {\"id\": ");
        json_str(e->id);
        printf(", \"name\": ");
        json_str(in->name);
        printf(", \"kind\": \"%s\", \"vendor\": ", kind_name(in->kind));
        json_str(in->vendor);
        printf(", \"driver\": ");
        json_str(in->driver);
        printf(", \"mem_bytes\": %llu, \"max_alloc_bytes\": %llu, \"unified_memory\": %s, "
               "\"shares_cpu_cores\": %s, \"compute_units\": %d, \"features\": ",
               (unsigned long long)in->mem_bytes, (unsigned long long)in->max_alloc,
               in->unified_memory ? "true" : "false", in->shares_cpu_cores ? "true" : "false",
               in->compute_units);
        json_str(in->features);
        if (probed && e->plan.alive) {
            const struct tern_probe *p = &e->plan.probe;
            printf(", \"probe\": {\"decode_layer_ms\": %.4f, \"prefill_layer_ms_per_token\": %.4f, "
                   "\"head_ms\": %.4f, \"head_certified_ms\": %.4f, \"transfer_ms\": %.4f}",
                   p->decode_layer_s * 1e3, p->prefill_layer_s * 1e3,
                   isfinite(p->head_s) ? p->head_s * 1e3 : -1.0,
                   isfinite(p->head_cert_s) ? p->head_cert_s * 1e3 : -1.0, p->call_s * 1e3);
        }
        printf("}%s\n", i + 1 < reg->n ? "," : "");
    }
    printf("]\n");
}

static void print_table(const struct tern_registry *reg, bool probed) {
    printf("| %-5s | %-40s | %-11s | %-24s | %-24s | %10s | %10s | %7s | %5s | %-28s |", "id", "name", "kind",
           "vendor", "driver", "memory", "max alloc", "unified", "units", "features");
    if (probed)
        printf(" %12s | %14s | %9s | %10s | %11s |", "decode/layer", "prefill/layer", "head", "cert. head",
               "transfer");
    printf("\n|-------|------------------------------------------|-------------|--------------------------|"
           "--------------------------|------------|------------|---------|-------|--------------------------"
           "----|");
    if (probed)
        printf("--------------|----------------|-----------|------------|-------------|");
    printf("\n");
    for (int i = 0; i < reg->n; i++) {
        const struct tern_registry_entry *e = &reg->e[i];
        const struct tern_device_info *in = &e->info;
        char mem[32], alloc[32];
        snprintf(mem, sizeof mem, "%.1f GiB", (double)in->mem_bytes / 1073741824.0);
        if (in->max_alloc)
            snprintf(alloc, sizeof alloc, "%.1f GiB", (double)in->max_alloc / 1073741824.0);
        else
            snprintf(alloc, sizeof alloc, "-");
        printf("| %-5s | %-40.40s | %-11s | %-24.24s | %-24.24s | %10s | %10s | %7s | %5d | %-28.28s |",
               e->id, in->name, kind_name(in->kind), in->vendor, in->driver, mem, alloc,
               in->unified_memory ? "yes" : "no", in->compute_units, in->features);
        if (probed && e->plan.alive) {
            const struct tern_probe *p = &e->plan.probe;
            char head[32], cert[32];
            if (isfinite(p->head_s))
                snprintf(head, sizeof head, "%.3f ms", p->head_s * 1e3);
            else
                snprintf(head, sizeof head, "too big");
            if (isfinite(p->head_cert_s))
                snprintf(cert, sizeof cert, "%.3f ms", p->head_cert_s * 1e3);
            else
                snprintf(cert, sizeof cert, "-");
            printf(" %9.3f ms | %11.4f ms | %9s | %10s | %8.3f ms |", p->decode_layer_s * 1e3,
                   p->prefill_layer_s * 1e3, head, cert, p->call_s * 1e3);
        } else if (probed) {
            printf(" %12s | %14s | %9s | %10s | %11s |", "dropped", "", "", "", "");
        }
        printf("\n");
    }
}

/* --tune: every OpenCL device in turn, one table row each. */
static int tune_devices(const struct tern_model_view *m, bool quick) {
    int n = 0;
    tern_cl_device_count(&n);
    if (n == 0) {
        tern_log_error("tern devices --tune: no OpenCL device to tune");
        return CLI_EXIT_FAIL;
    }
    printf("| %-5s | %-32s | %-22s | %10s | %-22s | %10s | %7s | %5s |\n", "id", "name", "built-in",
           "ms/layer", "tuned", "ms/layer", "speedup", "tried");
    printf("|-------|----------------------------------|------------------------|------------|"
           "------------------------|------------|---------|-------|\n");
    for (int i = 0; i < n; i++) {
        char spec[16], base[64], best[64];
        snprintf(spec, sizeof spec, "%d", i);
        struct tern_cl_tune_result r;
        tern_status st = tern_cl_device_tune(spec, m, quick, &r);
        if (st)
            return CLI_EXIT_FAIL;
        snprintf(base, sizeof base, "%s wg%d lpr%d kb%d", r.base.cpu_kernels ? "cpu" : "gpu", r.base.wg,
                 r.base.lpr, r.base.mm_kb);
        snprintf(best, sizeof best, "%s wg%d lpr%d kb%d", r.best.cpu_kernels ? "cpu" : "gpu", r.best.wg,
                 r.best.lpr, r.best.mm_kb);
        printf("| cl:%-2d | %-32.32s | %-22s | %10.4f | %-22s | %10.4f | %6.2fx | %5d |\n", i, r.name, base,
               r.base_s * 1e3, best, r.best_s * 1e3, r.base_s / r.best_s, r.n_tried);
        if (r.path[0])
            tern_log_info("stored in %s", r.path);
        else
            tern_log_warn("the cache folder is off (TERN_CACHE_DIR=): the tuning of cl:%d is not stored", i);
    }
    return CLI_EXIT_OK;
}

int cli_devices(int argc, char **argv) {
    const char *model = NULL, *shape = NULL, *v;
    bool probe = false, reprobe = false, json = false, tune = false, quick = false;
    long long threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(devices_usage, stdout);
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "--probe")) {
            probe = true;
        } else if (!strcmp(a, "--tune")) {
            tune = true;
        } else if (!strcmp(a, "--quick")) {
            quick = true;
        } else if (!strcmp(a, "--reprobe")) {
            probe = reprobe = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model = cli_value(argc, argv, &i)))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--shape")) {
            if (!(shape = cli_value(argc, argv, &i)))
                return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!(v = cli_value(argc, argv, &i)) || !cli_int(a, v, 1, 1024, &threads))
                return CLI_EXIT_USAGE;
        } else {
            cli_unknown("devices", a);
            return CLI_EXIT_USAGE;
        }
    }
    if (probe && tune) {
        tern_log_error("tern devices: --probe and --tune exclude each other");
        return CLI_EXIT_USAGE;
    }
    if ((probe || tune) && !model == !shape) {
        tern_log_error("tern devices %s needs exactly one of -m MODEL or --shape NAME",
                       tune ? "--tune" : "--probe");
        return CLI_EXIT_USAGE;
    }
    if (shape && !cli_shape_known(shape))
        return CLI_EXIT_USAGE;
    if (!probe && !tune && (model || shape)) {
        tern_log_error("-m and --shape go with --probe or --tune");
        return CLI_EXIT_USAGE;
    }
    if (quick && !tune) {
        tern_log_error("--quick goes with --tune");
        return CLI_EXIT_USAGE;
    }
    if (tune) {
        tern_model *tm = NULL;
        int rc = CLI_EXIT_FAIL;
        tern_status st = model ? tern_model_create(model, &tm) : cli_build_shape(shape, 0, 0, &tm);
        if (!st)
            rc = tune_devices(tern_model_view(tm), quick);
        tern_model_free(tm);
        return rc;
    }
    struct tern_registry reg;
    tern_status st = tern_devices_create("auto", (int)threads, &reg);
    if (st)
        return CLI_EXIT_FAIL;
    tern_model *m = NULL;
    int rc = CLI_EXIT_FAIL;
    if (probe) {
        st = model ? tern_model_create(model, &m) : cli_build_shape(shape, 0, 0, &m);
        if (st)
            goto done;
        st = tern_devices_probe(&reg, tern_model_view(m), reprobe);
        if (st)
            goto done;
    }
    if (json)
        print_json(&reg, probe);
    else
        print_table(&reg, probe);
    rc = CLI_EXIT_OK;
done:
    tern_registry_free(&reg);
    tern_model_free(m);
    return rc;
}

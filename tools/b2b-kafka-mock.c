/*
 * b2b-kafka-mock: a librdkafka mock cluster for tests and the demo.
 *
 *   b2b-kafka-mock [--brokers N] [--partitions N] [--prefix P]... [--no-control]
 *
 * Creates a mock cluster of N brokers (default 3) listening on 127.0.0.1, creates
 * the contract's topics for each --prefix (default "b2b."), each with the given
 * number of partitions (default 4), then prints
 *
 *   bootstrap=<host:port,...>
 *   control=127.0.0.1:<port>
 *
 * on stdout (flushed) and runs until SIGTERM or SIGINT, when it destroys the
 * cluster and exits 0.
 *
 * Control channel: a line protocol on the loopback TCP port printed above.
 * One command per line, one reply line per command: "ok[ <detail>]" or
 * "error <message>". Several clients may be connected at once.
 *
 *   ping                                 -> ok
 *   bootstrap                            -> ok <bootstrap list>
 *   create-topic NAME [PARTITIONS [RF]]  create one topic (existing: ok exists)
 *   create-prefix PREFIX [PARTITIONS]    create the contract's topics for PREFIX
 *   broker-down ID | broker-up ID        take a broker down / bring it back
 *   set-rtt ID MS                        add round-trip latency to a broker
 *   push-errors APIKEY CNT ERR...        the next CNT requests of APIKEY (any
 *                                        broker) fail with the given errors
 *   broker-errors ID APIKEY RTT_MS ERR...  same, for one broker, each with a delay
 *   clear-errors APIKEY                  forget pushed errors for APIKEY
 *   topic-error TOPIC ERR                set a topic error (ERR 0 clears)
 *   set-leader TOPIC PARTITION ID        move a partition's leader (-1: none)
 *   coordinator TYPE KEY ID              TYPE is "group" or "transaction"
 *   help                                 -> ok <command list>
 *
 * APIKEY is a number or a name (Produce, Fetch, ListOffsets, Metadata,
 * OffsetCommit, OffsetFetch, FindCoordinator, JoinGroup, Heartbeat, LeaveGroup,
 * SyncGroup, ApiVersions, InitProducerId, ...). ERR is a number (Kafka error
 * code, e.g. 6) or a name as librdkafka spells it without the RD_KAFKA_RESP_ERR_
 * prefix (e.g. NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT, NO_ERROR).
 */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_CLIENTS 64
#define LINE_MAX_LEN 4096
#define MAX_PREFIXES 32
#define MAX_ARGS 64

static const char *const TOPIC_SUFFIXES[] = {
    "commands.assign", "commands.revoke", "commands.migrate",
    "commands.notify", "commands.sync",   "commands.bulk", "results",
    "events.access",   "events.notifications", "dlq",
    "events.shops",    "events.privacy",
};

static volatile sig_atomic_t g_stop;

static rd_kafka_mock_cluster_t *g_mc;
static int g_brokers = 3;
static int g_partitions = 4;

struct client {
    int fd;
    size_t len;
    char buf[LINE_MAX_LEN];
};

static struct client g_clients[MAX_CLIENTS];

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("b2b-kafka-mock: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static int parse_int(const char *s, long min, long max, long *out) {
    char *end;
    long v;
    if (!s || !*s)
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static const struct {
    const char *name;
    int key;
} API_KEYS[] = {
    {"Produce", 0},           {"Fetch", 1},           {"ListOffsets", 2},
    {"Metadata", 3},          {"OffsetCommit", 8},    {"OffsetFetch", 9},
    {"FindCoordinator", 10},  {"JoinGroup", 11},      {"Heartbeat", 12},
    {"LeaveGroup", 13},       {"SyncGroup", 14},      {"DescribeGroups", 15},
    {"ListGroups", 16},       {"SaslHandshake", 17},  {"ApiVersions", 18},
    {"CreateTopics", 19},     {"DeleteTopics", 20},   {"DeleteRecords", 21},
    {"InitProducerId", 22},   {"OffsetForLeaderEpoch", 23},
    {"AddPartitionsToTxn", 24}, {"AddOffsetsToTxn", 25}, {"EndTxn", 26},
    {"TxnOffsetCommit", 28},  {"CreatePartitions", 37},
};

static int parse_apikey(const char *s, int16_t *out) {
    long v;
    size_t i;
    if (parse_int(s, 0, 32767, &v) == 0) {
        *out = (int16_t)v;
        return 0;
    }
    for (i = 0; i < sizeof(API_KEYS) / sizeof(API_KEYS[0]); i++) {
        if (strcasecmp(s, API_KEYS[i].name) == 0) {
            *out = (int16_t)API_KEYS[i].key;
            return 0;
        }
    }
    return -1;
}

static int parse_err(const char *s, rd_kafka_resp_err_t *out) {
    long v;
    const struct rd_kafka_err_desc *descs;
    size_t cnt, i;
    if (parse_int(s, -200, 1000, &v) == 0) {
        *out = (rd_kafka_resp_err_t)v;
        return 0;
    }
    if (strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18) == 0)
        s += 18;
    rd_kafka_get_err_descs(&descs, &cnt);
    for (i = 0; i < cnt; i++) {
        if (descs[i].name && strcasecmp(descs[i].name, s) == 0) {
            *out = descs[i].code;
            return 0;
        }
    }
    return -1;
}

/* librdkafka 2.0.2's mock thread can miss the wake-up of a request made right
 * after its previous one was answered, and then sleeps up to 1 s: leave a few
 * milliseconds between consecutive requests. */
static void pace(void) {
    static struct timespec last;
    struct timespec now;
    long elapsed_us;
    clock_gettime(CLOCK_MONOTONIC, &now);
    elapsed_us = (now.tv_sec - last.tv_sec) * 1000000L + (now.tv_nsec - last.tv_nsec) / 1000;
    if (elapsed_us >= 0 && elapsed_us < 5000) {
        struct timespec d = {0, (5000 - elapsed_us) * 1000L};
        nanosleep(&d, NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &last);
}

/* Creates a topic; an already existing topic is not an error. */
static rd_kafka_resp_err_t create_topic(const char *name, int partitions, int rf) {
    rd_kafka_resp_err_t err;
    pace();
    err = rd_kafka_mock_topic_create(g_mc, name, partitions, rf);
    if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        err = RD_KAFKA_RESP_ERR_NO_ERROR;
    return err;
}

static int default_rf(void) {
    return g_brokers < 3 ? g_brokers : 3;
}

static rd_kafka_resp_err_t create_prefix(const char *prefix, int partitions,
                                         char *failed, size_t failed_sz) {
    size_t i;
    char name[512];
    for (i = 0; i < sizeof(TOPIC_SUFFIXES) / sizeof(TOPIC_SUFFIXES[0]); i++) {
        rd_kafka_resp_err_t err;
        snprintf(name, sizeof(name), "%s%s", prefix, TOPIC_SUFFIXES[i]);
        err = create_topic(name, partitions, default_rf());
        if (err) {
            snprintf(failed, failed_sz, "%s", name);
            return err;
        }
    }
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static int valid_topic_name(const char *s) {
    size_t n = strlen(s), i;
    if (n == 0 || n > 249)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static void reply_err(char *out, size_t sz, rd_kafka_resp_err_t err) {
    snprintf(out, sz, "error %s: %s", rd_kafka_err2name(err), rd_kafka_err2str(err));
}

/* Executes one control line and writes the reply (without newline) to out. */
static void execute(char *line, char *out, size_t sz) {
    char *argv[MAX_ARGS];
    int argc = 0;
    char *save = NULL, *tok;
    long a, b, c;
    rd_kafka_resp_err_t err;

    for (tok = strtok_r(line, " \t\r", &save); tok && argc < MAX_ARGS;
         tok = strtok_r(NULL, " \t\r", &save))
        argv[argc++] = tok;
    if (tok) {
        snprintf(out, sz, "error too many arguments");
        return;
    }
    if (argc == 0) {
        snprintf(out, sz, "error empty command");
        return;
    }

#define NEED(lo, hi, usage)                                                    \
    do {                                                                       \
        if (argc < (lo) || argc > (hi)) {                                      \
            snprintf(out, sz, "error usage: %s", usage);                       \
            return;                                                            \
        }                                                                      \
    } while (0)

    if (!strcmp(argv[0], "ping")) {
        snprintf(out, sz, "ok");
    } else if (!strcmp(argv[0], "help")) {
        snprintf(out, sz,
                 "ok ping bootstrap create-topic create-prefix broker-down broker-up "
                 "set-rtt push-errors broker-errors clear-errors topic-error "
                 "set-leader coordinator");
    } else if (!strcmp(argv[0], "bootstrap")) {
        snprintf(out, sz, "ok %s", rd_kafka_mock_cluster_bootstraps(g_mc));
    } else if (!strcmp(argv[0], "create-topic")) {
        NEED(2, 4, "create-topic NAME [PARTITIONS [RF]]");
        a = g_partitions;
        b = default_rf();
        if (!valid_topic_name(argv[1]) ||
            (argc > 2 && parse_int(argv[2], 1, 10000, &a)) ||
            (argc > 3 && parse_int(argv[3], 1, g_brokers, &b))) {
            snprintf(out, sz, "error invalid argument");
            return;
        }
        err = create_topic(argv[1], (int)a, (int)b);
        if (err)
            reply_err(out, sz, err);
        else
            snprintf(out, sz, "ok");
    } else if (!strcmp(argv[0], "create-prefix")) {
        char failed[512] = "";
        char probe[512];
        NEED(2, 3, "create-prefix PREFIX [PARTITIONS]");
        a = g_partitions;
        snprintf(probe, sizeof(probe), "%sresults", argv[1]);
        if (strlen(argv[1]) > 200 || !valid_topic_name(probe) ||
            (argc > 2 && parse_int(argv[2], 1, 10000, &a))) {
            snprintf(out, sz, "error invalid argument");
            return;
        }
        err = create_prefix(argv[1], (int)a, failed, sizeof(failed));
        if (err)
            snprintf(out, sz, "error %s: %s", failed, rd_kafka_err2name(err));
        else
            snprintf(out, sz, "ok");
    } else if (!strcmp(argv[0], "broker-down") || !strcmp(argv[0], "broker-up")) {
        NEED(2, 2, "broker-down|broker-up ID");
        if (parse_int(argv[1], 1, 1000, &a)) {
            snprintf(out, sz, "error invalid broker id");
            return;
        }
        err = argv[0][7] == 'd' ? rd_kafka_mock_broker_set_down(g_mc, (int32_t)a)
                                : rd_kafka_mock_broker_set_up(g_mc, (int32_t)a);
        if (err)
            reply_err(out, sz, err);
        else
            snprintf(out, sz, "ok");
    } else if (!strcmp(argv[0], "set-rtt")) {
        NEED(3, 3, "set-rtt ID MS");
        if (parse_int(argv[1], 1, 1000, &a) || parse_int(argv[2], 0, 3600000, &b)) {
            snprintf(out, sz, "error invalid argument");
            return;
        }
        err = rd_kafka_mock_broker_set_rtt(g_mc, (int32_t)a, (int)b);
        if (err)
            reply_err(out, sz, err);
        else
            snprintf(out, sz, "ok");
    } else if (!strcmp(argv[0], "push-errors")) {
        rd_kafka_resp_err_t errs[MAX_ARGS];
        int16_t key;
        int i;
        NEED(4, MAX_ARGS, "push-errors APIKEY CNT ERR...");
        if (parse_apikey(argv[1], &key) || parse_int(argv[2], 1, MAX_ARGS, &a)) {
            snprintf(out, sz, "error invalid argument");
            return;
        }
        if (a != argc - 3) {
            snprintf(out, sz, "error CNT is %ld but %d errors given", a, argc - 3);
            return;
        }
        for (i = 3; i < argc; i++) {
            if (parse_err(argv[i], &errs[i - 3])) {
                snprintf(out, sz, "error unknown error %s", argv[i]);
                return;
            }
        }
        rd_kafka_mock_push_request_errors_array(g_mc, key, (size_t)a, errs);
        snprintf(out, sz, "ok");
    } else if (!strcmp(argv[0], "broker-errors")) {
        int16_t key;
        int i;
        NEED(5, MAX_ARGS, "broker-errors ID APIKEY RTT_MS ERR...");
        if (parse_int(argv[1], 1, 1000, &a) || parse_apikey(argv[2], &key) ||
            parse_int(argv[3], 0, 3600000, &b)) {
            snprintf(out, sz, "error invalid argument");
            return;
        }
        for (i = 4; i < argc; i++) {
            rd_kafka_resp_err_t e;
            if (parse_err(argv[i], &e)) {
                snprintf(out, sz, "error unknown error %s", argv[i]);
                return;
            }
        }
        for (i = 4; i < argc; i++) {
            rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
            (void)parse_err(argv[i], &e);
            pace();
            err = rd_kafka_mock_broker_push_request_error_rtts(
                g_mc, (int32_t)a, key, 1, e, (int)b);
            if (err) {
                reply_err(out, sz, err);
                return;
            }
        }
        snprintf(out, sz, "ok");
    } else if (!strcmp(argv[0], "clear-errors")) {
        int16_t key;
        NEED(2, 2, "clear-errors APIKEY");
        if (parse_apikey(argv[1], &key)) {
            snprintf(out, sz, "error invalid argument");
            return;
        }
        rd_kafka_mock_clear_request_errors(g_mc, key);
        snprintf(out, sz, "ok");
    } else if (!strcmp(argv[0], "topic-error")) {
        rd_kafka_resp_err_t e;
        NEED(3, 3, "topic-error TOPIC ERR");
        if (!valid_topic_name(argv[1]) || parse_err(argv[2], &e)) {
            snprintf(out, sz, "error invalid argument");
            return;
        }
        rd_kafka_mock_topic_set_error(g_mc, argv[1], e);
        snprintf(out, sz, "ok");
    } else if (!strcmp(argv[0], "set-leader")) {
        NEED(4, 4, "set-leader TOPIC PARTITION ID");
        if (!valid_topic_name(argv[1]) || parse_int(argv[2], 0, 100000, &a) ||
            parse_int(argv[3], -1, 1000, &b)) {
            snprintf(out, sz, "error invalid argument");
            return;
        }
        err = rd_kafka_mock_partition_set_leader(g_mc, argv[1], (int32_t)a, (int32_t)b);
        if (err)
            reply_err(out, sz, err);
        else
            snprintf(out, sz, "ok");
    } else if (!strcmp(argv[0], "coordinator")) {
        NEED(4, 4, "coordinator group|transaction KEY ID");
        if ((strcmp(argv[1], "group") && strcmp(argv[1], "transaction")) ||
            parse_int(argv[3], 1, 1000, &c)) {
            snprintf(out, sz, "error invalid argument");
            return;
        }
        err = rd_kafka_mock_coordinator_set(g_mc, argv[1], argv[2], (int32_t)c);
        if (err)
            reply_err(out, sz, err);
        else
            snprintf(out, sz, "ok");
    } else {
        snprintf(out, sz, "error unknown command %s", argv[0]);
    }
#undef NEED
}

static void send_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

static void close_client(struct client *cl) {
    close(cl->fd);
    cl->fd = -1;
    cl->len = 0;
}

/* Reads what the client sent and answers each complete line. */
static void serve_client(struct client *cl) {
    ssize_t r;
    char *nl;
    char reply[LINE_MAX_LEN + 64];

    r = recv(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - 1 - cl->len, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (r <= 0) {
        close_client(cl);
        return;
    }
    cl->len += (size_t)r;
    cl->buf[cl->len] = '\0';
    while ((nl = memchr(cl->buf, '\n', cl->len)) != NULL) {
        size_t used = (size_t)(nl - cl->buf) + 1;
        *nl = '\0';
        execute(cl->buf, reply, sizeof(reply) - 1);
        strcat(reply, "\n");
        send_all(cl->fd, reply, strlen(reply));
        memmove(cl->buf, cl->buf + used, cl->len - used);
        cl->len -= used;
        cl->buf[cl->len] = '\0';
    }
    if (cl->len >= sizeof(cl->buf) - 1) {
        send_all(cl->fd, "error line too long\n", 20);
        close_client(cl);
    }
}

static int open_control(int *port) {
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("bind: %s", strerror(errno));
    if (listen(fd, 16) < 0)
        die("listen: %s", strerror(errno));
    if (getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
        die("getsockname: %s", strerror(errno));
    *port = ntohs(sa.sin_port);
    return fd;
}

static void usage(void) {
    fprintf(stderr,
            "usage: b2b-kafka-mock [--brokers N] [--partitions N] [--prefix P]... "
            "[--no-control]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *prefixes[MAX_PREFIXES];
    int nprefixes = 0, i, lfd = -1, port = 0, control = 1;
    long v;
    char errstr[512];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    struct sigaction sa;

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--brokers") && i + 1 < argc) {
            if (parse_int(argv[++i], 1, 64, &v))
                usage();
            g_brokers = (int)v;
        } else if (!strcmp(argv[i], "--partitions") && i + 1 < argc) {
            if (parse_int(argv[++i], 1, 10000, &v))
                usage();
            g_partitions = (int)v;
        } else if (!strcmp(argv[i], "--prefix") && i + 1 < argc) {
            if (nprefixes == MAX_PREFIXES)
                die("too many --prefix");
            prefixes[nprefixes++] = argv[++i];
        } else if (!strcmp(argv[i], "--no-control")) {
            control = 0;
        } else {
            usage();
        }
    }
    if (nprefixes == 0)
        prefixes[nprefixes++] = "b2b.";

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK)
        die("conf: %s", errstr);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk)
        die("rd_kafka_new: %s", errstr);
    g_mc = rd_kafka_mock_cluster_new(rk, g_brokers);
    if (!g_mc)
        die("rd_kafka_mock_cluster_new failed");

    for (i = 0; i < nprefixes; i++) {
        char failed[512] = "";
        rd_kafka_resp_err_t err =
            create_prefix(prefixes[i], g_partitions, failed, sizeof(failed));
        if (err)
            die("creating %s: %s", failed, rd_kafka_err2str(err));
    }

    if (control)
        lfd = open_control(&port);
    for (i = 0; i < MAX_CLIENTS; i++)
        g_clients[i].fd = -1;

    printf("bootstrap=%s\n", rd_kafka_mock_cluster_bootstraps(g_mc));
    if (control)
        printf("control=127.0.0.1:%d\n", port);
    fflush(stdout);

    while (!g_stop) {
        struct pollfd pfds[MAX_CLIENTS + 1];
        int idx[MAX_CLIENTS + 1];
        int n = 0, r;
        if (lfd >= 0) {
            pfds[n].fd = lfd;
            pfds[n].events = POLLIN;
            idx[n++] = -1;
        }
        for (i = 0; i < MAX_CLIENTS; i++) {
            if (g_clients[i].fd >= 0) {
                pfds[n].fd = g_clients[i].fd;
                pfds[n].events = POLLIN;
                idx[n++] = i;
            }
        }
        r = poll(pfds, (nfds_t)n, 500);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("poll: %s", strerror(errno));
        }
        for (i = 0; i < n && r > 0; i++) {
            if (!pfds[i].revents)
                continue;
            if (idx[i] < 0) {
                int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                int j;
                if (cfd < 0)
                    continue;
                for (j = 0; j < MAX_CLIENTS && g_clients[j].fd >= 0; j++)
                    ;
                if (j == MAX_CLIENTS) {
                    send_all(cfd, "error too many clients\n", 23);
                    close(cfd);
                    continue;
                }
                g_clients[j].fd = cfd;
                g_clients[j].len = 0;
            } else {
                serve_client(&g_clients[idx[i]]);
            }
        }
    }

    for (i = 0; i < MAX_CLIENTS; i++)
        if (g_clients[i].fd >= 0)
            close_client(&g_clients[i]);
    if (lfd >= 0)
        close(lfd);
    rd_kafka_mock_cluster_destroy(g_mc);
    rd_kafka_destroy(rk);
    return 0;
}

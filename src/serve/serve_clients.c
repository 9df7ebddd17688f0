/* SPDX-License-Identifier: MIT */
/*
 * serve clients: what the server remembers of each client address, for
 * the limits that stop one client from taking the whole server: sessions
 * open at once (client_sessions_max), connections per minute
 * (client_rate_max) and recent AUTH failures (the growing delay of
 * auth_delay_max). An IPv6 client is its /64: one host usually holds a
 * whole /64, and counting single addresses would let it pick new ones
 * at will. A chained hash table; entries with nothing left to remember
 * are dropped by serve_clients_gc().
 */
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "serve/serve.h"

/* the window of client_rate_max and of AUTH failures, seconds */
#define CLIENT_RATE_WINDOW 60
#define CLIENT_AUTH_WINDOW (15 * 60)

struct client_entry {
	struct client_entry *next;
	uint8_t key[9];           /* family byte, then 4 or 8 octets */
	unsigned sessions;
	int64_t rate_start;       /* the current rate window began here */
	unsigned rate_count;
	int64_t auth_last;        /* the last AUTH failure */
	unsigned auth_failures;   /* in the window before auth_last */
};

struct serve_clients {
	struct client_entry **buckets;
	size_t nbuckets;
	size_t count;
};

struct serve_clients *
serve_clients_new(void)
{
	struct serve_clients *sc = xcalloc(1, sizeof(*sc));

	sc->nbuckets = 256;
	sc->buckets = xcalloc(sc->nbuckets, sizeof(*sc->buckets));
	return sc;
}

void
serve_clients_free(struct serve_clients **scp)
{
	struct serve_clients *sc = *scp;

	if (sc == NULL)
		return;
	*scp = NULL;
	for (size_t i = 0; i < sc->nbuckets; i++)
		for (struct client_entry *e = sc->buckets[i], *n; e != NULL;
		     e = n) {
			n = e->next;
			free(e);
		}
	free(sc->buckets);
	free(sc);
}

/* false for an address that is no client (a local socket) */
static bool
client_key(const struct sockaddr *sa, uint8_t key[9])
{
	memset(key, 0, 9);
	if (sa->sa_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1,
		       &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		       4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)
				    (const void *)sa)->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0,
						    0, 0, 0xff, 0xff };
		if (memcmp(a, mapped, sizeof(mapped)) == 0) {
			key[0] = 4;
			memcpy(key + 1, a + 12, 4);
		} else {
			key[0] = 6;
			memcpy(key + 1, a, 8);   /* the /64 */
		}
		return true;
	}
	return false;
}

static size_t
key_hash(const uint8_t key[9])
{
	uint32_t h = 2166136261u;       /* FNV-1a */

	for (int i = 0; i < 9; i++)
		h = (h ^ key[i]) * 16777619u;
	return h;
}

static void
grow(struct serve_clients *sc)
{
	size_t n = sc->nbuckets * 2;
	struct client_entry **b = xcalloc(n, sizeof(*b));

	for (size_t i = 0; i < sc->nbuckets; i++)
		for (struct client_entry *e = sc->buckets[i], *next; e != NULL;
		     e = next) {
			size_t h = key_hash(e->key) & (n - 1);
			next = e->next;
			e->next = b[h];
			b[h] = e;
		}
	free(sc->buckets);
	sc->buckets = b;
	sc->nbuckets = n;
}

static struct client_entry *
lookup(struct serve_clients *sc, const struct sockaddr *sa, bool create)
{
	uint8_t key[9];
	struct client_entry *e;
	size_t h;

	if (!client_key(sa, key))
		return NULL;
	h = key_hash(key) & (sc->nbuckets - 1);
	for (e = sc->buckets[h]; e != NULL; e = e->next)
		if (memcmp(e->key, key, sizeof(key)) == 0)
			return e;
	if (!create)
		return NULL;
	if (sc->count >= sc->nbuckets) {
		grow(sc);
		h = key_hash(key) & (sc->nbuckets - 1);
	}
	e = xcalloc(1, sizeof(*e));
	memcpy(e->key, key, sizeof(key));
	e->next = sc->buckets[h];
	sc->buckets[h] = e;
	sc->count++;
	return e;
}

int
serve_clients_admit(struct serve_clients *sc, const struct sockaddr *peer,
		    int64_t now, unsigned sessions_max, unsigned rate_max,
		    const char **why_r)
{
	struct client_entry *e = lookup(sc, peer, true);

	if (e == NULL)
		return 0;
	if (now - e->rate_start >= CLIENT_RATE_WINDOW) {
		e->rate_start = now;
		e->rate_count = 0;
	}
	/* a refused connection counts too: hammering does not pay */
	e->rate_count++;
	if (rate_max > 0 && e->rate_count > rate_max) {
		*why_r = "client_rate_max";
		return -1;
	}
	if (sessions_max > 0 && e->sessions >= sessions_max) {
		*why_r = "client_sessions_max";
		return -1;
	}
	e->sessions++;
	return 0;
}

void
serve_clients_leave(struct serve_clients *sc, const struct sockaddr *peer)
{
	struct client_entry *e = lookup(sc, peer, false);

	if (e != NULL && e->sessions > 0)
		e->sessions--;
}

unsigned
serve_clients_auth_failed(struct serve_clients *sc,
			  const struct sockaddr *peer, int64_t now)
{
	struct client_entry *e = lookup(sc, peer, true);

	if (e == NULL)
		return 1;
	if (now - e->auth_last >= CLIENT_AUTH_WINDOW)
		e->auth_failures = 0;
	e->auth_last = now;
	if (e->auth_failures < 1000)
		e->auth_failures++;
	return e->auth_failures;
}

void
serve_clients_gc(struct serve_clients *sc, int64_t now)
{
	for (size_t i = 0; i < sc->nbuckets; i++) {
		struct client_entry **pp = &sc->buckets[i];
		while (*pp != NULL) {
			struct client_entry *e = *pp;
			if (e->sessions == 0 &&
			    now - e->rate_start >= CLIENT_RATE_WINDOW &&
			    now - e->auth_last >= CLIENT_AUTH_WINDOW) {
				*pp = e->next;
				free(e);
				sc->count--;
			} else {
				pp = &e->next;
			}
		}
	}
}

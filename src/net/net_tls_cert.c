/* SPDX-License-Identifier: MIT */
/*
 * A self-signed certificate for a server that was given none, so that
 * STARTTLS and the submissions port work out of the box (`make run`).
 * Clients will not trust it; a real deployment sets tls_cert.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "net/net.h"

#define SELFSIGNED_DAYS (10 * 365)

/* writes with PEM_write into path via a temporary file, then renames */
static int
write_pem(const char *path, unsigned mode, EVP_PKEY *key, X509 *cert,
	  char **error_r)
{
	char *tmp = xasprintf("%s.tmp", path);
	FILE *f = NULL;
	int fd, ok;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		*error_r = xasprintf("%s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(tmp);
		return -1;
	}
	ok = key != NULL ?
		PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1 :
		PEM_write_X509(f, cert) == 1;
	ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
	if (fclose(f) != 0)
		ok = 0;
	if (!ok || rename(tmp, path) < 0) {
		*error_r = xasprintf("%s: %s", path,
				     errno != 0 ? strerror(errno) :
				     "cannot write");
		(void)unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}

int
net_tls_selfsigned_make(const char *cert_file, const char *key_file,
			const char *hostname, char **error_r)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX v3;
	X509_EXTENSION *ext = NULL;
	char san[300];
	int r = -1;

	if (key == NULL || x == NULL)
		goto ssl_fail;
	(void)snprintf(san, sizeof(san), "DNS:%s", hostname);
	if (X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(x),
			     (long)(time(NULL) & 0x7fffffff)) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x),
			    (long)SELFSIGNED_DAYS * 86400) == NULL ||
	    X509_set_pubkey(x, key) != 1)
		goto ssl_fail;
	name = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				       (const unsigned char *)hostname, -1,
				       -1, 0) != 1 ||
	    X509_set_issuer_name(x, name) != 1)
		goto ssl_fail;
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	if (ext == NULL || X509_add_ext(x, ext, -1) != 1 ||
	    X509_sign(x, key, EVP_sha256()) == 0)
		goto ssl_fail;
	if (write_pem(key_file, 0600, key, NULL, error_r) < 0 ||
	    write_pem(cert_file, 0644, NULL, x, error_r) < 0)
		goto out;
	r = 0;
	goto out;
ssl_fail: {
		char detail[200];
		ERR_error_string_n(ERR_get_error(), detail, sizeof(detail));
		ERR_clear_error();
		*error_r = xasprintf("self-signed certificate: %s", detail);
	}
out:
	X509_EXTENSION_free(ext);
	X509_free(x);
	EVP_PKEY_free(key);
	return r;
}

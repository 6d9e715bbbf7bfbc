/* `--healthcheck`: the probe container health checks run, so images need no curl. */
#ifndef COMMON_HEALTHCHECK_H
#define COMMON_HEALTHCHECK_H

/* Time the whole probe may take: inside ECS's shortest health check timeout, 2 s. */
#define HEALTHCHECK_TIMEOUT_MS 1500

/* Asks http://127.0.0.1:port/health and returns 0 when it answers 200, 1 otherwise. */
int healthcheck_run(unsigned int port);

#endif

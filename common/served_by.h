/* Which task answered: the X-Served-By value every answer carries. */
#ifndef COMMON_SERVED_BY_H
#define COMMON_SERVED_BY_H

/* Longest value kept, NUL included; a longer task ID or hostname is cut. */
#define SERVED_BY_MAX 128

/*
 * Works out the value once, at start-up: the ECS task ID (the last part of the
 * TaskARN from $ECS_CONTAINER_METADATA_URI_V4/task) on ECS, the hostname
 * elsewhere, which under docker compose is the container ID.
 */
void served_by_init(void);

/* The value; borrowed, valid for the life of the process. */
const char *served_by(void);

#endif

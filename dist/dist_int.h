/*
 * Inside the gateway (dist/, with libei): what its files share.
 */
#ifndef DIST_DIST_INT_H
#define DIST_DIST_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <ei.h>

/* The distribution's capability flag for monitors by name (erts's dist.h) */
#define DIST_DFLAG_MONITOR_NAME 0x20u

/* The monitor control messages' operations (ei.h names them ERL_MONITOR_P...) */
#define DIST_OP_MONITOR_P      19
#define DIST_OP_DEMONITOR_P    20
#define DIST_OP_MONITOR_P_EXIT 21

/*
 * The gateway's sockets for libei (sock.c): TCP whose handshake offers monitors by name as
 * well, for ei_connect_xinit_ussi().
 */
extern ei_socket_callbacks dist_sock_callbacks;

/*
 * The low 32 flag bits the peer on connection fd offered in its handshake (sock.c), 0 when
 * unknown. Any thread.
 */
uint32_t dist_sock_peer_flags(int fd);

/*
 * Whether the handshake offers monitors by name (sock.c; [dist] monitors, default yes): set
 * before the first connection.
 */
extern bool dist_sock_offer_monitors;

#endif

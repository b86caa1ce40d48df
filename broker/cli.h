/* The responder's commands, run against the control socket:
 * status, ls, rotate NAME, revoke NAME|--all, unfreeze NAME, ready. */
#ifndef CREDBROKER_CLI_H
#define CREDBROKER_CLI_H

#include <stdbool.h>

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILED 1 /* the broker refused or the command failed */
#define CLI_EXIT_USAGE 2
#define CLI_EXIT_UNCONFIRMED 3 /* revoked locally, upstream not confirmed */
#define CLI_EXIT_UNREACHABLE 4 /* no broker answers on the socket */

/* True when verb is one of the control commands. */
bool cli_is_command(const char *verb);
/* Runs argv[0] (a verb) with its arguments; returns an exit status. */
int cli_run(int argc, char **argv, const char *socket_path, bool json);
/* The socket to use when none is given: $CREDBROKER_SOCKET, else
 * /run/credbroker/control.sock when it exists, else the demo's
 * .demo/control.sock in the current directory when it exists. */
const char *cli_default_socket(void);

#endif

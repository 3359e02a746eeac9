/* SPDX-License-Identifier: MIT */
/*
 * The command-line interface of design.md §5: argument parsing, one function
 * per subcommand, and talking to a running daemon through the control API.
 */
#ifndef SHOAL_CLI_H
#define SHOAL_CLI_H

/* Run the command line; returns the process exit status (0, 1 or 2). */
int	cli_main(int argc, char **argv);

#endif /* SHOAL_CLI_H */

/* SPDX-License-Identifier: MIT */
/* Entry point; the subcommands live in cli.c. */
#include "shoal/cli.h"

int
main(int argc, char **argv)
{
	return cli_main(argc, argv);
}

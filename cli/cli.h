/* cli.h - the subcommands of the edgespool command-line tool. Each takes
 * argv from its own name on and returns the process exit status:
 * 0 success, 1 failure, 2 usage error. */
#ifndef CLI_H
#define CLI_H

int cmd_emit(int argc, char **argv);
int cmd_journal(int argc, char **argv);
int cmd_sub(int argc, char **argv);
int cmd_passwd(int argc, char **argv);
int cmd_tail(int argc, char **argv);

#endif

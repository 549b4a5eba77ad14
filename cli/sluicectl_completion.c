#include "sluicectl_completion.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#define WORD_MAX 64 /* longest word of a synopsis that completes */

/* Calls `fn` on each word of text (separated by blanks, brackets, "|" and "..."), with `value`
 * set when the word follows an option in the same bracket (it is that option's value). */
static void synopsis_words(const char *text, void (*fn)(void *ctx, const char *word, bool value),
                           void *ctx)
{
    char word[WORD_MAX];
    bool value = false;
    const char *p = text;
    while (*p) {
        size_t len = strcspn(p, " []|.\n");
        if (len == 0) {
            if (*p == '[' || *p == ']' || *p == '\n')
                value = false; /* a new group: what follows is not an option's value */
            p++;
            continue;
        }
        if (len < sizeof(word)) {
            memcpy(word, p, len);
            word[len] = '\0';
            fn(ctx, word, value);
            if (word[0] == '-')
                value = true;
        }
        p += len;
    }
}

/* Prints the words a command completes: options, and lowercase operands that are not an
 * option's value ("bash|zsh"). */
static void command_word(void *ctx, const char *word, bool value)
{
    FILE *out = ctx;
    if (word[0] == '-') {
        fprintf(out, " %s", word);
        return;
    }
    if (value)
        return;
    for (const char *c = word; *c; c++)
        if (!islower((unsigned char)*c) && *c != '-')
            return;
    fprintf(out, " %s", word);
}

struct values {
    FILE *out;
    const char *option; /* the option whose listed values are printed */
    bool in;            /* past `option`, in its bracket */
};

/* Prints the lowercase values listed for v->option ("--status new|replayed|..."). */
static void option_value(void *ctx, const char *word, bool value)
{
    struct values *v = ctx;
    if (!value || word[0] == '-') {
        v->in = strcmp(word, v->option) == 0;
        return;
    }
    bool literal = true;
    for (const char *c = word; *c; c++)
        literal = literal && (islower((unsigned char)*c) || *c == '-');
    if (v->in && literal)
        fprintf(v->out, " %s", word);
}

/* Whether cmds[i] is the first command with its first word ("dlq" of "dlq list"), so that each
 * first word is listed once; *first_len is that word's length. */
static bool first_of_group(const struct ctl_command *cmds, size_t i, size_t *first_len)
{
    const char *space = strchr(cmds[i].words, ' ');
    *first_len = space ? (size_t)(space - cmds[i].words) : strlen(cmds[i].words);
    for (size_t j = 0; j < i; j++)
        if (strncmp(cmds[j].words, cmds[i].words, *first_len) == 0 &&
            (cmds[j].words[*first_len] == ' ' || cmds[j].words[*first_len] == '\0'))
            return false;
    return true;
}

/* Whether `option` takes a value in the synopsis at `p` (the text just past it). */
static bool takes_value(const char *p)
{
    return p[0] == ' ' && p[1] != '-' && p[1] != '[' && p[1] != '\0';
}

/* Whether `option` (len bytes) takes a value in a synopsis before cmds[i] at `upto`. */
static bool seen_before(const struct ctl_command *cmds, size_t i, const char *upto,
                        const char *option, size_t len)
{
    for (size_t j = 0; j <= i; j++)
        for (const char *p = cmds[j].synopsis; (p = strstr(p, option)) != NULL; p += len) {
            if (j == i && p >= upto)
                break;
            if ((p == cmds[j].synopsis || p[-1] == ' ' || p[-1] == '[') && takes_value(p + len))
                return true;
        }
    return false;
}

static bool is_global(const struct option *globals, const char *option)
{
    for (const struct option *g = globals; g->name; g++)
        if (strcmp(option + 2, g->name) == 0)
            return true;
    return false;
}

/* The `case $prev` arms: files after --config, the values of -o and of each option whose
 * synopsis lists them, nothing after another option that takes a value. */
static void print_prev_cases(const struct ctl_command *cmds, size_t n, const struct option *globals,
                             FILE *out)
{
    fprintf(out,
            "    case $prev in\n"
            "    --config) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
            "    -o|--output) COMPREPLY=($(compgen -W \"json table\" -- \"$cur\")); return ;;\n");
    for (const struct option *g = globals; g->name; g++)
        if (g->has_arg == required_argument && strcmp(g->name, "config") != 0)
            fprintf(out, "    --%s) return ;;\n", g->name);
    for (size_t i = 0; i < n; i++) {
        for (const char *p = cmds[i].synopsis; (p = strstr(p, "--")) != NULL;) {
            size_t len = strspn(p, "-abcdefghijklmnopqrstuvwxyz");
            char option[WORD_MAX];
            if (len < sizeof(option) && takes_value(p + len)) {
                memcpy(option, p, len);
                option[len] = '\0';
                if (!seen_before(cmds, i, p, option, len) && !is_global(globals, option)) {
                    fprintf(out, "    %s) COMPREPLY=($(compgen -W \"", option);
                    for (size_t j = i; j < n; j++) {
                        struct values v = {.out = out, .option = option};
                        synopsis_words(cmds[j].synopsis, option_value, &v);
                    }
                    fprintf(out, "\" -- \"$cur\")); return ;;\n");
                }
            }
            p += len;
        }
    }
    fprintf(out, "    esac\n");
}

int sluicectl_completion(const char *shell, const struct ctl_command *cmds, size_t n,
                         const struct option *globals, FILE *out)
{
    bool zsh = strcmp(shell, "zsh") == 0;
    if (!zsh && strcmp(shell, "bash") != 0)
        return -1;
    if (zsh)
        fprintf(out, "#compdef sluicectl\n"
                     "# zsh completion for sluicectl (`sluicectl completion zsh`): the bash\n"
                     "# completion under zsh's bashcompinit.\n"
                     "autoload -U +X bashcompinit && bashcompinit\n");
    else
        fprintf(out, "# bash completion for sluicectl (`sluicectl completion bash`)\n");
    fprintf(out, "_sluicectl()\n{\n"
                 "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
                 "    local cmd='' words='' i\n"
                 "    # The command words typed so far, without options and their values.\n"
                 "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
                 "        case ${COMP_WORDS[i]} in\n");
    for (const struct option *g = globals; g->name; g++)
        if (g->has_arg == required_argument)
            fprintf(out, "        --%s) ((i++)) ;;\n", g->name);
    fprintf(out, "        -*) ;;\n"
                 "        *) cmd=\"${cmd:+$cmd }${COMP_WORDS[i]}\" ;;\n"
                 "        esac\n"
                 "    done\n");
    print_prev_cases(cmds, n, globals, out);
    fprintf(out, "    case $cmd in\n    '') words='");
    size_t first_len;
    for (size_t i = 0; i < n; i++)
        if (first_of_group(cmds, i, &first_len))
            fprintf(out, "%.*s ", (int)first_len, cmds[i].words);
    for (const struct option *g = globals; g->name; g++)
        fprintf(out, "--%s%s", g->name, g[1].name ? " " : "");
    fprintf(out, "' ;;\n");
    for (size_t i = 0; i < n; i++) {
        /* A group's own word: its second words. */
        if (strchr(cmds[i].words, ' ') && first_of_group(cmds, i, &first_len)) {
            fprintf(out, "    %.*s) words='", (int)first_len, cmds[i].words);
            for (size_t j = i; j < n; j++)
                if (strncmp(cmds[j].words, cmds[i].words, first_len + 1) == 0)
                    fprintf(out, "%s%s", j > i ? " " : "", cmds[j].words + first_len + 1);
            fprintf(out, "' ;;\n");
        }
        fprintf(out, "    '%s'|'%s '*) words='--help", cmds[i].words, cmds[i].words);
        synopsis_words(cmds[i].synopsis, command_word, out);
        fprintf(out, "' ;;\n");
    }
    fprintf(out, "    esac\n"
                 "    COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
                 "}\n"
                 "complete -o default -F _sluicectl sluicectl\n");
    return 0;
}

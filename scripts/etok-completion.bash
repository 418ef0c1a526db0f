# etok bash completion (installed as share/bash-completion/completions/etok). Commands, options
# and meter names are read from the etok being completed (its --help, `etok meters`), and
# scenario names from `etok tpf --list scenarios`, so completion is never out of date.
_etok() {
    local cur prev etok cmd words
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    etok=${COMP_WORDS[0]}
    if [ "$COMP_CWORD" -eq 1 ]; then
        words=$("$etok" --help 2>/dev/null | sed -n 's/^  \([a-z][a-z-]*\)  .*/\1/p')
        COMPREPLY=($(compgen -W "$words --help --version" -- "$cur"))
        return
    fi
    cmd=${COMP_WORDS[1]}
    case $prev in
        --meter)
            COMPREPLY=($(compgen -W "$("$etok" meters 2>/dev/null | awk 'NR > 1 {print $1}')" -- "$cur"))
            return ;;
        --list)
            COMPREPLY=($(compgen -W "hardware models scenarios levers fields" -- "$cur"))
            return ;;
        --lever)
            COMPREPLY=($(compgen -W "$("$etok" tpf --list levers 2>/dev/null | awk '{print $1}')" -- "$cur"))
            return ;;
        -m|--model|-o|--output|--evals|--profile|--from-run|--csv|--svg|--extlog|--tokens-file)
            COMPREPLY=($(compgen -f -- "$cur"))
            return ;;
    esac
    if [[ $cur == -* ]]; then
        words=$("$etok" "$cmd" --help 2>/dev/null | grep -o -- '\(^\|[ [,]\)--\?[a-zA-Z][a-zA-Z0-9-]*' | tr -d ' [,' | grep '^-' | sort -u)
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
        return
    fi
    if [ "$cmd" = tpf ] && [ "$COMP_CWORD" -eq 2 ]; then
        COMPREPLY=($(compgen -W "$("$etok" tpf --list scenarios 2>/dev/null | awk '{print $1}')" -- "$cur"))
    fi
    COMPREPLY+=($(compgen -f -- "$cur"))
}
complete -o filenames -F _etok etok

using System.CommandLine;
using Skiff.Hosting;
using Skiff.State;

namespace Skiff.Cli;

/// <summary>
/// <c>skiff completion bash|zsh</c>: a script for the shell that asks skiff itself what fits (System.CommandLine's
/// <c>[suggest]</c> directive, as dotnet-suggest does, without installing it): commands, flags, the values of <c>-c</c>,
/// <c>-o</c> and <c>--log-format</c>, and stack names from the default state folder.
/// </summary>
public static class CompletionCommand
{
    public const string Bash = """
        # skiff completion for bash. Load it now:      source <(skiff completion bash)
        # or for every shell:   skiff completion bash > /etc/bash_completion.d/skiff
        _skiff_complete() {
            local IFS=$'\n'
            local words
            words="$(skiff "[suggest:${COMP_POINT}]" "${COMP_LINE}" 2>/dev/null)"
            COMPREPLY=($(compgen -W "${words}" -- "${COMP_WORDS[COMP_CWORD]}"))
        }
        complete -o default -F _skiff_complete skiff

        """;

    public const string Zsh = """
        #compdef skiff
        # skiff completion for zsh. Load it now:       source <(skiff completion zsh)
        # or for every shell:   skiff completion zsh > "${fpath[1]}/_skiff"
        _skiff() {
            local -a words
            words=("${(@f)$(skiff "[suggest:${CURSOR}]" "${BUFFER}" 2>/dev/null)}")
            compadd -a words
        }
        if (( $+functions[compdef] )); then compdef _skiff skiff; fi

        """;

    public static Command Build()
    {
        var shell = new Argument<string>("SHELL") { Description = "bash or zsh" };
        shell.AcceptOnlyFromAmong("bash", "zsh");
        var command = new Command("completion", "Print the shell completion script for bash or zsh (source <(skiff completion bash))") { shell };
        command.SetAction(parse =>
        {
            parse.InvocationConfiguration.Output.Write(parse.GetValue(shell) == "zsh" ? Zsh : Bash);
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>NAME completes to the stacks the default state folder knows (the folder a plain <c>skiff status</c> reads).</summary>
    public static void StackNames(Argument<string> name) =>
        name.CompletionSources.Add(_ =>
        {
            try
            {
                return new StateStore(CommonOptions.DefaultStateDir()).ReadAll().Select(r => r.Name).Distinct(StringComparer.Ordinal)
                    .Select(n => new System.CommandLine.Completions.CompletionItem(n));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return [];
            }
        });
}

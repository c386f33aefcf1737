using Skiff.Cli;

namespace Skiff.Tests.Cli;

public sealed class RunAcmeFlagsTests
{
    [Fact]
    public void Acme_directory_defaults_to_Lets_Encrypt_production_and_the_email_to_none()
    {
        var parse = SkiffCommandLine.Build().Parse(["run", "--path", "x", "--node", "n"]);

        Assert.Empty(parse.Errors);
        Assert.Equal("https://acme-v02.api.letsencrypt.org/directory", parse.GetValue(RunCommand.AcmeDirectory));
        Assert.Null(parse.GetValue(RunCommand.AcmeEmail));
    }

    [Fact]
    public void Acme_flags_take_a_directory_URL_and_an_address()
    {
        var parse = SkiffCommandLine.Build().Parse(
            ["run", "--path", "x", "--node", "n", "--acme-directory", "https://acme-staging-v02.api.letsencrypt.org/directory", "--acme-email", "ops@example.com"]);

        Assert.Empty(parse.Errors);
        Assert.Equal("https://acme-staging-v02.api.letsencrypt.org/directory", parse.GetValue(RunCommand.AcmeDirectory));
        Assert.Equal("ops@example.com", parse.GetValue(RunCommand.AcmeEmail));
    }
}

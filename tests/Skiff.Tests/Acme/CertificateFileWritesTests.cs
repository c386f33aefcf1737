using System.Text;
using Skiff.State;

namespace Skiff.Tests.Acme;

/// <summary>
/// The writes the certificate files rely on (State's <see cref="AtomicFile"/>, which the Acme folder uses): the proxy
/// reading a certificate while it is replaced sees the old file or the new one, never a mix, and the mode is 0600.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class CertificateFileWritesTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("skiff-certwrite-").FullName;

    [Fact]
    public void A_replaced_file_is_owner_only_even_when_the_old_one_was_not()
    {
        var path = Path.Combine(dir, "api.example.com.key");
        File.WriteAllText(path, "old");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        AtomicFile.Write(path, "new"u8, ownerOnly: true);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal("new", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFiles(dir));
    }

    [Fact]
    public void A_reader_of_the_old_file_reads_all_of_it_while_the_new_one_takes_its_place()
    {
        var path = Path.Combine(dir, "api.example.com.crt");
        var old = string.Concat(Enumerable.Repeat("-----OLD-----\n", 4096));
        File.WriteAllText(path, old);
        using var reader = new StreamReader(path, Encoding.ASCII);
        var firstLine = reader.ReadLine();

        AtomicFile.Write(path, Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("-----NEW-----\n", 10))), ownerOnly: true);

        Assert.Equal(old, firstLine + "\n" + reader.ReadToEnd());
        Assert.StartsWith("-----NEW-----", File.ReadAllText(path), StringComparison.Ordinal);
    }

    [Fact]
    public void A_write_that_fails_leaves_no_temporary_file()
    {
        var path = Path.Combine(dir, "taken");
        Directory.CreateDirectory(path);

        Assert.ThrowsAny<IOException>(() => AtomicFile.Write(path, "x"u8, ownerOnly: true));

        Assert.Empty(Directory.GetFiles(dir));
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);
}

using System.Net;
using Skiff.Observability;

namespace Skiff.Tests.Observability;

public class BindAddressTests
{
    [Theory]
    [InlineData("0")]
    [InlineData("")]
    [InlineData("  ")]
    [InlineData(null)]
    public void Parse_Zero_MeansDisabled(string? text) => Assert.Null(BindAddress.Parse(text));

    [Theory]
    [InlineData(":0", null, 0)]
    [InlineData(":8080", null, 8080)]
    [InlineData("127.0.0.1:0", "127.0.0.1", 0)]
    [InlineData("0.0.0.0:8081", "0.0.0.0", 8081)]
    [InlineData("[::1]:0", "::1", 0)]
    [InlineData("[::]:9090", "::", 9090)]
    [InlineData("localhost:8080", "127.0.0.1", 8080)]
    public void Parse_HostAndPort(string text, string? address, int port)
    {
        var parsed = BindAddress.Parse(text);

        Assert.Equal(new BindAddress(address is null ? null : IPAddress.Parse(address), port), parsed);
    }

    [Theory]
    [InlineData("8080")]
    [InlineData(":http")]
    [InlineData(":65536")]
    [InlineData(":-1")]
    [InlineData("example.com:80")]
    [InlineData("127.0.0.1:")]
    public void Parse_Malformed_Throws(string text) => Assert.Throws<FormatException>(() => BindAddress.Parse(text));

    [Theory]
    [InlineData(":8080")]
    [InlineData("127.0.0.1:0")]
    [InlineData("[::1]:8081")]
    public void ToString_RoundTrips(string text) => Assert.Equal(text, BindAddress.Parse(text)!.ToString());
}

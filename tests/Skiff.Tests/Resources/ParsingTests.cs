using Skiff.Validation;

namespace Skiff.Tests.Resources;

public class ParsingTests
{
    [Theory]
    [InlineData("512Mi", 512L * 1024 * 1024)]
    [InlineData("1Gi", 1024L * 1024 * 1024)]
    [InlineData("1G", 1_000_000_000L)]
    [InlineData("1.5Gi", 1610612736L)]
    [InlineData("100", 100L)]
    [InlineData("1k", 1000L)]
    [InlineData("500m", 1L)] // fractions of a byte round up, as in Kubernetes
    [InlineData("8Ei", long.MaxValue)]
    public void Quantity_parses_bytes(string text, long expected)
    {
        if (expected == long.MaxValue)
        {
            Assert.False(Quantity.TryParseBytes(text, out _)); // 8Ei overflows a long
            return;
        }

        Assert.True(Quantity.TryParseBytes(text, out var bytes));
        Assert.Equal(expected, bytes);
    }

    [Theory]
    [InlineData("500m", 500L)]
    [InlineData("2", 2000L)]
    [InlineData("0.5", 500L)]
    [InlineData("1.25", 1250L)]
    [InlineData("1k", 1_000_000L)]
    public void Quantity_parses_millicpu(string text, long expected)
    {
        Assert.True(Quantity.TryParseMilliCpu(text, out var milli));
        Assert.Equal(expected, milli);
    }

    [Theory]
    [InlineData("")]
    [InlineData("512MB")]
    [InlineData("-1Gi")]
    [InlineData("1e3")]
    [InlineData(".5")]
    [InlineData("Mi")]
    [InlineData("1 Gi")]
    [InlineData(null)]
    public void Quantity_rejects(string? text)
    {
        Assert.False(Quantity.TryParseBytes(text, out _));
        Assert.False(Quantity.TryParseMilliCpu(text, out _));
    }

    [Theory]
    [InlineData("30s", 30)]
    [InlineData("10m", 600)]
    [InlineData("1h", 3600)]
    [InlineData("720h", 720 * 3600)]
    [InlineData("1h30m", 5400)]
    [InlineData("1.5h", 5400)]
    [InlineData("1m30.5s", 90.5)]
    [InlineData("250ms", 0.25)]
    [InlineData("1500us", 0.0015)]
    public void GoDuration_parses(string text, double seconds)
    {
        Assert.True(GoDuration.TryParse(text, out var duration));
        Assert.Equal(TimeSpan.FromSeconds(seconds), duration);
    }

    [Theory]
    [InlineData("")]
    [InlineData("1d")]
    [InlineData("10")]
    [InlineData("-1h")]
    [InlineData("h")]
    [InlineData("1h 30m")]
    [InlineData("99999999999999999999h")]
    [InlineData(null)]
    public void GoDuration_rejects(string? text) => Assert.False(GoDuration.TryParse(text, out _));

    [Theory]
    [InlineData(5400, "1h30m0s")]
    [InlineData(600, "10m0s")]
    [InlineData(1.5, "1.5s")]
    [InlineData(0, "0s")]
    public void GoDuration_formats_like_go(double seconds, string expected) =>
        Assert.Equal(expected, GoDuration.Format(TimeSpan.FromSeconds(seconds)));
}

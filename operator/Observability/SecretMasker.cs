namespace Skiff.Observability;

/// <summary>Replaces every known secret value in text copied into status, events or logs.</summary>
public static class SecretMasker
{
    public const string Mask = "******";

    public static string Apply(string text, IEnumerable<string> secrets)
    {
        // One masking algorithm for everything: the log redactor's (longest first, overlaps merged).
        var redactor = new SecretRedactor();
        foreach (var secret in secrets)
        {
            redactor.Register(secret);
        }

        return redactor.Redact(text);
    }
}

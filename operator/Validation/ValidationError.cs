namespace Skiff.Validation;

/// <summary>One problem with a resource: the field's path (<c>spec.app.ports[1].containerPort</c>) and what is wrong.</summary>
public sealed record ValidationError(string Path, string Message)
{
    public override string ToString() => $"{Path}: {Message}";
}

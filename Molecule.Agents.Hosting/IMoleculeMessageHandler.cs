namespace Molecule.Agents.Hosting;

/// <summary>
/// Handles the inbound messages of the hosted agent (<c>services.AddMoleculeAgent&lt;THandler&gt;(…)</c>), one at a
/// time, oldest first. Resolved from a new service scope for each message, so it may depend on scoped services.
/// </summary>
/// <remarks>
/// A message counts as handled when <see cref="HandleAsync"/> completes; it is then gone from the inbox for good,
/// across restarts. When it throws, the message stays unhandled and is handed to it again (after a pause that grows
/// with each failure, up to a minute), and so is one whose process died mid-handler: at least once into the handler,
/// exactly once handled. Make the handler's effects safe to repeat.
/// </remarks>
public interface IMoleculeMessageHandler
{
    /// <summary>Handles one message: answer it (<see cref="MoleculeMessage.ReplyAsync"/>), use the team through
    /// <paramref name="agent"/>, or just take note.</summary>
    /// <param name="message">The oldest message waiting.</param>
    /// <param name="agent">The agent it arrived at, for the team tools (peers, delegation, memories, …).</param>
    /// <param name="cancellationToken">Not cancelled when the host starts stopping — the message in hand finishes
    /// first — only when the host's shutdown timeout runs out; the message then stays unhandled and comes again.</param>
    Task HandleAsync(MoleculeMessage message, MoleculeAgent agent, CancellationToken cancellationToken);
}
